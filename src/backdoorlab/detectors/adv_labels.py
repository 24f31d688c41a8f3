"""`adv-labels`: where untargeted adversarial examples land (Mu et al. Fig. 1). An infected model
sends the examples of every other class to its target far more often than anywhere else.

`adv-labels-l2` is the same probe in an L_2 ball: an L_inf ball of 0.1 cannot draw a bright patch
on MNIST's black background, an L_2 ball of 2 can (a 4x4 white square has L_2 norm 4) by putting
its budget on a few pixels."""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import nn

from backdoorlab.data.base import Dataset
from backdoorlab.data.iterator import BatchIterator
from backdoorlab.detectors.base import Detection, DetectorConfig, register_detector
from backdoorlab.perturb.pgd import pgd
from backdoorlab.perturb.threats import THREATS


class AdvLabelsConfig(DetectorConfig):
    norm: Literal["linf", "l2"] = Field("linf", description="the ball of the untargeted PGD")
    eps: float = Field(0.1, gt=0, description="budget of the untargeted PGD ([0,1] pixels)")
    steps: int = Field(10, ge=1, description="PGD steps")
    alpha: float | None = Field(None, gt=0, description="PGD step (default 2.5 * eps / steps)")
    limit: int | None = Field(2000, ge=1, description="at most this many images (None: all)")
    batch_size: int = Field(256, ge=1)


class AdvLabelsL2Config(AdvLabelsConfig):
    norm: Literal["linf", "l2"] = Field("l2", description="the ball of the untargeted PGD")
    eps: float = Field(2.0, gt=0, description="L_2 budget of the untargeted PGD ([0,1] pixels)")


@register_detector("adv-labels-l2", config=AdvLabelsL2Config)
@register_detector("adv-labels", config=AdvLabelsConfig)
def adversarial_labels(model: nn.Module, data: Dataset, cfg: AdvLabelsConfig) -> Detection:
    """Where untargeted PGD examples land: per class, the % of other classes' examples it gets.

    The outlier score is the MAD anomaly index of those shares over the classes (high side)."""
    k = data.num_classes
    if cfg.limit is not None and len(data) > cfg.limit:
        gen = torch.Generator().manual_seed(cfg.seed)
        data = data.subset(torch.randperm(len(data), generator=gen)[: cfg.limit].sort().values)
    threat = THREATS[cfg.norm](cfg.eps)
    alpha = cfg.alpha or 2.5 * cfg.eps / cfg.steps
    landed = torch.zeros(k, dtype=torch.int64, device=data.device)
    for x, y, _ in BatchIterator(data, cfg.batch_size):
        adv = pgd(model, x, y, threat, cfg.steps, alpha, random_start=False)
        with torch.no_grad():
            pred = model(adv).argmax(1)
        # count the moved examples by their new label on the device (bin k: unmoved, dropped)
        landed += torch.bincount(torch.where(pred != y, pred, k), minlength=k + 1)[:k]
    landed = landed.cpu()
    others = len(data) - torch.bincount(data.labels.cpu(), minlength=k)[:k]
    shares = 100.0 * landed.double() / others.clamp_min(1)
    return Detection.from_values(
        cfg.name,
        shares,
        "high",
        cfg,
        "% of other classes' adversarial examples labelled as the class",
        {"norm": cfg.norm, "eps": cfg.eps, "steps": cfg.steps, "images": len(data)},
        scale="log",
    )
