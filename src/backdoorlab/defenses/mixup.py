"""mixup as a training-time baseline (Zhang et al.; Gao Tables III-IV)."""

from __future__ import annotations

import torch

from backdoorlab.defenses.base import Defense, DefenseContext, MixConfig, MixHook, register_defense
from backdoorlab.train.hooks import Hook


class MixupHook(MixHook):
    def mix(self, x: torch.Tensor, x2: torch.Tensor, lam: float) -> tuple[torch.Tensor, float]:
        return lam * x + (1 - lam) * x2, lam


@register_defense("mixup", config=MixConfig)
class Mixup(Defense):
    """Train on convex mixtures of image pairs and their labels (Zhang et al.)."""

    def training_hooks(self, ctx: DefenseContext) -> list[Hook]:
        return [MixupHook(self.cfg, ctx.seed)]
