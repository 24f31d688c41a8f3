"""CutMix as a training-time baseline (Yun et al.; Gao Tables III-IV)."""

from __future__ import annotations

import torch

from backdoorlab.defenses.base import Defense, DefenseContext, MixConfig, MixHook, register_defense
from backdoorlab.train.hooks import Hook


class CutMixHook(MixHook):
    def mix(self, x: torch.Tensor, x2: torch.Tensor, lam: float) -> tuple[torch.Tensor, float]:
        h, w = x.shape[-2:]
        cut = (1 - lam) ** 0.5
        ch, cw = int(round(h * cut)), int(round(w * cut))
        cy, cx = int(self.rng.integers(h)), int(self.rng.integers(w))
        y0, y1 = max(cy - ch // 2, 0), min(cy + ch - ch // 2, h)
        x0, x1 = max(cx - cw // 2, 0), min(cx + cw - cw // 2, w)
        out = x.clone()
        out[..., y0:y1, x0:x1] = x2[..., y0:y1, x0:x1]
        # the loss is mixed by the exact share of pixels kept after clipping the box
        return out, 1 - (y1 - y0) * (x1 - x0) / (h * w)


@register_defense("cutmix", config=MixConfig)
class CutMix(Defense):
    """Paste a random box from another image; labels mixed by pixel share (Yun et al.)."""

    def training_hooks(self, ctx: DefenseContext) -> list[Hook]:
        return [CutMixHook(self.cfg, ctx.seed)]
