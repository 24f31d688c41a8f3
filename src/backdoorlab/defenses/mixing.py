"""Mixing augmentations as training-time baselines (Gao Tables III-IV): mixup and CutMix.

Each is a batch recipe: the batch is mixed with a shuffled copy of itself and the loss is the
same mixture of the two cross-entropies.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field

from backdoorlab.defenses.base import Defense, DefenseConfig, DefenseContext, register_defense
from backdoorlab.train.hooks import Batch, Hook


class MixConfig(DefenseConfig):
    alpha: float = Field(1.0, gt=0, description="lambda ~ Beta(alpha, alpha)")
    prob: float = Field(1.0, ge=0, le=1, description="share of batches that are mixed")


class _MixHook(Hook):
    def __init__(self, cfg: MixConfig, seed: int) -> None:
        self.cfg = cfg
        # own generators, so mixing draws neither shift nor depend on the global RNG
        self.rng = np.random.default_rng(seed)
        self.gen = torch.Generator().manual_seed(seed)

    def mix(self, x: torch.Tensor, x2: torch.Tensor, lam: float) -> tuple[torch.Tensor, float]:
        raise NotImplementedError

    def transform(self, state, batch: Batch) -> Batch:
        if self.rng.random() >= self.cfg.prob:
            return batch
        lam = float(self.rng.beta(self.cfg.alpha, self.cfg.alpha))
        perm = torch.randperm(len(batch.y), generator=self.gen).to(batch.y.device)
        x, lam = self.mix(batch.x, batch.x[perm], lam)
        y, y2 = batch.y, batch.y[perm]
        # per-sample weights of the two labels; they sum to one for every sample
        w1 = torch.full(y.shape, lam, device=y.device)
        w2 = 1 - w1

        def loss(logits: torch.Tensor) -> torch.Tensor:
            ce1 = F.cross_entropy(logits, y, reduction="none")
            ce2 = F.cross_entropy(logits, y2, reduction="none")
            return (w1 * ce1 + w2 * ce2).mean()

        info = {**batch.info, "lam": lam, "weights": (w1, w2), "perm": perm}
        return Batch(x, y, batch.idx, loss=loss, info=info)


class MixupHook(_MixHook):
    def mix(self, x: torch.Tensor, x2: torch.Tensor, lam: float) -> tuple[torch.Tensor, float]:
        return lam * x + (1 - lam) * x2, lam


class CutMixHook(_MixHook):
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


@register_defense("mixup", config=MixConfig)
class Mixup(Defense):
    """Train on convex mixtures of image pairs and their labels (Zhang et al.)."""

    def training_hooks(self, ctx: DefenseContext) -> list[Hook]:
        return [MixupHook(self.cfg, ctx.seed)]


@register_defense("cutmix", config=MixConfig)
class CutMix(Defense):
    """Paste a random box from another image; labels mixed by pixel share (Yun et al.)."""

    def training_hooks(self, ctx: DefenseContext) -> list[Hook]:
        return [CutMixHook(self.cfg, ctx.seed)]
