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
from backdoorlab.data.iterator import Augment, BatchIterator
from backdoorlab.detectors.base import Detection, DetectorConfig, register_detector
from backdoorlab.perturb.pgd import pgd
from backdoorlab.perturb.threats import THREATS, Threat
from backdoorlab.train.perf import DEFAULT, Performance


def predicted(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The classes `model` gives `x`, in eval mode and without gradients (its mode restored)."""
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            return model(x).argmax(1)
    finally:
        model.train(was)


def untargeted_examples(
    model: nn.Module,
    data: Dataset,
    threat: Threat,
    steps: int,
    alpha: float,
    *,
    batch_size: int = 256,
    random_start: bool = True,
    augment: Augment | None = None,
    seed: int = 0,
    labels: bool = True,
    images: bool = True,
    perf: Performance = DEFAULT,
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Untargeted PGD examples of every sample of `data` in index order and, with `labels`, the
    class `model` gives each (Mu et al.'s adversarial labels; the `adv-labels` probe, AFT's
    training set and stopping signal, and the label and distance analyses all come from here).

    With `augment`, each sample is augmented once before crafting (drawn from `seed`); random
    starts draw from the global generator. `images` False keeps only the labels (no copy of the
    examples is held).
    """
    shape = (len(data), data.channels, *data.size)
    kept = torch.empty(shape, device=data.device) if images else None
    found = torch.empty(len(data), dtype=torch.int64, device=data.device) if labels else None
    for x, y, idx in BatchIterator(data, batch_size, augment=augment, seed=seed):
        adv = pgd(model, x, y, threat, steps, alpha, random_start=random_start, perf=perf)
        if kept is not None:
            kept[idx] = adv
        if found is not None:
            found[idx] = predicted(model, adv)
    return kept, found


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
def detect_adversarial_labels(model: nn.Module, data: Dataset, cfg: AdvLabelsConfig) -> Detection:
    """Where untargeted PGD examples land: per class, the % of other classes' examples it gets.

    The outlier score is the MAD anomaly index of those shares over the classes (high side)."""
    k = data.num_classes
    if cfg.limit is not None and len(data) > cfg.limit:
        gen = torch.Generator().manual_seed(cfg.seed)
        data = data.subset(torch.randperm(len(data), generator=gen)[: cfg.limit].sort().values)
    threat = THREATS[cfg.norm](cfg.eps)
    alpha = cfg.alpha or 2.5 * cfg.eps / cfg.steps
    _, pred = untargeted_examples(
        model, data, threat, cfg.steps, alpha, batch_size=cfg.batch_size, random_start=False,
        images=False,
    )  # fmt: skip
    # count the moved examples by their new label (bin k: unmoved, dropped)
    moved = torch.where(pred != data.labels, pred, k)
    landed = torch.bincount(moved, minlength=k + 1)[:k].cpu()
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
        resolution=round(100.0 / len(data), 6),  # one image, at most, of a class's share
    )
