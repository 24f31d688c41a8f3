"""A trigger drawn by the user: any pattern image stamped through a mask (x' = (1 - a*m) x +
a*m p), for shapes no other attack draws (scattered pixels, a cross, faint stripes)."""

from __future__ import annotations

import torch
from pydantic import Field

from backdoorlab.attacks.base import Attack, AttackConfig, register_attack
from backdoorlab.attacks.user_trigger import masked_blend, read_image
from backdoorlab.data.base import InputSpec
from backdoorlab.errors import ConfigError


class PatternConfig(AttackConfig):
    pattern: str = Field(description="image file of the trigger (PNG/JPEG) at the data's size")
    mask: str | None = Field(
        None,
        description="image file whose grey level (0-255) weighs each pixel of the pattern; "
        "default: the pattern's non-black pixels",
    )
    alpha: float = Field(1.0, gt=0, le=1, description="opacity of the stamped pattern")


def _image(path: str, channels: int, size: tuple[int, int], what: str) -> torch.Tensor:
    """[1,C,H,W] in [0,1] from a file that must already have the data's height and width."""
    img = read_image(path, channels, what)
    if tuple(img.shape[-2:]) != tuple(size):
        h, w = img.shape[-2:]
        raise ConfigError(f"{what}: the image is {h}x{w}, the data {size[0]}x{size[1]}")
    return img


@register_attack("pattern", config=PatternConfig)
class Pattern(Attack):
    """A user's pattern image stamped through a mask at opacity alpha."""

    def __init__(self, cfg: PatternConfig, spec: InputSpec, device="cpu") -> None:
        super().__init__(cfg, spec, device)
        pattern = _image(cfg.pattern, spec.channels, spec.size, "`attack.pattern`")
        if cfg.mask is None:
            mask = (pattern.amax(1, keepdim=True) > 0).float()
        else:
            mask = _image(cfg.mask, 1, spec.size, "`attack.mask`")
        if not mask.any():
            raise ConfigError("`attack.mask`: selects no pixel (the trigger would change nothing)")
        self.pattern, self.mask = pattern.to(self.device), mask.to(self.device)
        self.stamped = masked_blend(self.pattern, self.mask, cfg.alpha)  # a user trigger's formula

    def trigger(self, x: torch.Tensor) -> torch.Tensor:
        return self.stamped(x)

    def state(self) -> dict[str, torch.Tensor]:
        return {"mask": self.mask, "pattern": self.pattern}
