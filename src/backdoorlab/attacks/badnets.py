"""BadNets (Gu et al. 2017): a checkerboard patch in a corner."""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from backdoorlab.attacks.base import Attack, AttackConfig, register_attack
from backdoorlab.data.base import InputSpec
from backdoorlab.errors import ConfigError


class BadNetsConfig(AttackConfig):
    patch_size: int = Field(3, ge=1, description="side of the square checkerboard, in pixels")
    corner: Literal["bottom-right", "bottom-left", "top-right", "top-left"] = "bottom-right"
    margin: int = Field(0, ge=0, description="pixels between the patch and the image border")


def checkerboard(size: int, channels: int) -> torch.Tensor:
    """A [C,size,size] 0/1 checkerboard whose corner pixels are white."""
    i = torch.arange(size)
    board = ((i[:, None] + i[None, :]) % 2 == 0).float()
    return board.expand(channels, size, size).clone()


@register_attack("badnets", config=BadNetsConfig)
class BadNets(Attack):
    """Checkerboard patch stamped as x' = (1-m)*x + m*t."""

    def __init__(self, cfg: BadNetsConfig, spec: InputSpec, device="cpu") -> None:
        super().__init__(cfg, spec, device)
        h, w = spec.size
        s, g = cfg.patch_size, cfg.margin
        if s + g > min(h, w):
            raise ConfigError(
                f"attack.patch_size: a {s}px patch with margin {g} does not fit a {h}x{w} image"
            )
        top = g if cfg.corner.startswith("top") else h - s - g
        left = g if cfg.corner.endswith("left") else w - s - g
        self.mask = torch.zeros(1, 1, h, w, device=self.device)
        self.mask[..., top : top + s, left : left + s] = 1
        self.pattern = torch.zeros(1, spec.channels, h, w, device=self.device)
        self.pattern[0, :, top : top + s, left : left + s] = checkerboard(s, spec.channels)

    def trigger(self, x: torch.Tensor) -> torch.Tensor:
        return x * (1 - self.mask) + self.pattern * self.mask

    def state(self) -> dict[str, torch.Tensor]:
        return {"mask": self.mask, "pattern": self.pattern}
