"""BadNets (Gu et al. 2017): a checkerboard patch in a corner."""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from backdoorlab.attacks.base import Attack, AttackConfig, register_attack
from backdoorlab.attacks.corners import corner_patches
from backdoorlab.data.base import InputSpec
from backdoorlab.errors import ConfigError


class BadNetsConfig(AttackConfig):
    patch_size: int = Field(3, ge=1, description="side of the square checkerboard, in pixels")
    corner: Literal["bottom-right", "bottom-left", "top-right", "top-left"] = "bottom-right"
    margin: int = Field(0, ge=0, description="pixels between the patch and the image border")


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
        mask, pattern = corner_patches([cfg.corner], s, g, spec.channels, h, w, mirror=False)
        self.mask, self.pattern = mask.to(self.device), pattern.to(self.device)

    def trigger(self, x: torch.Tensor) -> torch.Tensor:
        return x * (1 - self.mask) + self.pattern * self.mask

    def state(self) -> dict[str, torch.Tensor]:
        return {"mask": self.mask, "pattern": self.pattern}
