"""SIG / SIN (Barni et al. 2019): a clean-label sinusoidal signal added to the image."""

from __future__ import annotations

import math
from typing import Literal

import torch
from pydantic import Field

from backdoorlab.attacks.base import Attack, AttackConfig, register_attack
from backdoorlab.data.base import InputSpec


class SIGConfig(AttackConfig):
    label_mode: Literal["dirty", "clean"] = "clean"
    rate_of: Literal["dataset", "target_class"] = "target_class"
    delta: float = Field(20 / 255, gt=0, le=1, description="amplitude of the signal (training)")
    test_delta: float | None = Field(
        None, gt=0, le=1, description="amplitude at test time (Barni et al. allow a larger one)"
    )
    frequency: float = Field(6, gt=0, description="periods across the image width")


def sinusoid(spec: InputSpec, delta: float, frequency: float) -> torch.Tensor:
    """v(i,j) = delta * sin(2*pi*j*f/W) as a [1,C,H,W] signal, constant down the columns."""
    h, w = spec.size
    j = torch.arange(w, dtype=torch.float32)
    row = delta * torch.sin(2 * math.pi * j * frequency / w)
    return row.view(1, 1, 1, w).expand(1, spec.channels, h, w).clone()


@register_attack("sig", config=SIGConfig)
class SIG(Attack):
    """x' = clip(x + v) with a horizontal sinusoid v; poisons target-class images by default."""

    def __init__(self, cfg: SIGConfig, spec: InputSpec, device="cpu") -> None:
        super().__init__(cfg, spec, device)
        self.signal = sinusoid(spec, cfg.delta, cfg.frequency).to(self.device)
        test_delta = cfg.test_delta or cfg.delta
        self.test_signal = sinusoid(spec, test_delta, cfg.frequency).to(self.device)

    def poison_trigger(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.signal

    def trigger(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.test_signal

    def state(self) -> dict[str, torch.Tensor]:
        return {"signal": self.signal, "test_signal": self.test_signal}
