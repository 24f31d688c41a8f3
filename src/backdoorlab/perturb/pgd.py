"""Projected gradient descent over any threat model, and the adversarial-training batch recipe."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from backdoorlab.perturb.threats import Threat
from backdoorlab.train.hooks import Batch, Hook

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def pgd(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    threat: Threat,
    steps: int,
    alpha: float,
    *,
    random_start: bool = True,
    loss: Loss = F.cross_entropy,
    targeted: bool = False,
    bn_mode: Literal["eval", "train"] = "eval",
) -> torch.Tensor:
    """Adversarial images: maximise `loss(model(x'), y)` (minimise it when `targeted`).

    Gradients are taken with respect to the perturbation only; BatchNorm runs in `bn_mode`.
    """
    was_training = model.training
    model.train(bn_mode == "train")
    sign = -1.0 if targeted else 1.0
    delta = threat.init(x, random_start)
    for _ in range(steps):
        delta.requires_grad_(True)
        value = loss(model(threat.apply(x, delta)), y)
        (grad,) = torch.autograd.grad(value, delta)
        with torch.no_grad():
            delta = threat.project(threat.step(delta, sign * grad, alpha), x)
    model.train(was_training)
    return threat.apply(x, delta.detach())


class AdversarialBatch(Hook):
    """A batch recipe: replace each batch by its PGD examples (Madry adversarial training)."""

    def __init__(
        self,
        threat: Threat,
        steps: int,
        alpha: float,
        random_start: bool = True,
        bn_mode: Literal["eval", "train"] = "eval",
    ) -> None:
        self.threat, self.steps, self.alpha = threat, steps, alpha
        self.random_start, self.bn_mode = random_start, bn_mode

    def transform(self, state, batch: Batch) -> Batch:
        x_adv = pgd(
            state.model,
            batch.x,
            batch.y,
            self.threat,
            self.steps,
            self.alpha,
            random_start=self.random_start,
            bn_mode=self.bn_mode,
        )
        return Batch(x_adv, batch.y, batch.idx, batch.loss, batch.info)
