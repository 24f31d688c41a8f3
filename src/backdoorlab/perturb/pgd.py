"""PGD over any threat model, random and relaxed perturbations, and the batch recipe that
composes them (adversarial training, random perturbation, CAT)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from backdoorlab.perturb.threats import Threat
from backdoorlab.train.hooks import Batch, Hook
from backdoorlab.train.perf import DEFAULT, Performance, prepare_batch, prepare_model

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def pgd_delta(
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
    perf: Performance = DEFAULT,
) -> torch.Tensor:
    """The perturbation that maximises `loss(model(apply(x, delta)), y)` (minimises: targeted).

    Gradients are taken with respect to the perturbation only (the parameters are frozen while
    crafting, so no activation is kept for their gradients); BatchNorm runs in `bn_mode`. The
    perturbation and its projection stay in x's dtype under autocast.
    """
    was_training = model.training
    model.train(bn_mode == "train")
    prepare_model(model, perf)
    x = prepare_batch(x, perf)
    frozen = [p for p in model.parameters() if p.requires_grad]
    for p in frozen:
        p.requires_grad_(False)
    sign = -1.0 if targeted else 1.0
    try:
        delta = threat.init(x, random_start)
        for _ in range(steps):
            delta.requires_grad_(True)
            value = loss(model(threat.apply(x, delta)).float(), y)
            (grad,) = torch.autograd.grad(value, delta)
            with torch.no_grad():
                delta = threat.project(threat.step(delta, sign * grad, alpha), x)
    finally:
        for p in frozen:
            p.requires_grad_(True)
        model.train(was_training)
    return delta.detach()


def pgd(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, threat: Threat, *args: Any, **options: Any
) -> torch.Tensor:
    """Adversarial images: x moved by `pgd_delta` (whose arguments follow: steps, alpha, ...)."""
    return threat.apply(x, pgd_delta(model, x, y, threat, *args, **options))


def relaxed(adv: torch.Tensor, rand: torch.Tensor, beta: float) -> torch.Tensor:
    """beta * adv + (1 - beta) * rand (Gao et al. Sec. III-E), before any clipping."""
    return beta * adv + (1 - beta) * rand


@dataclass(frozen=True)
class Perturbation:
    """One perturbation: `beta` 1 is adversarial (PGD), 0 random, in between relaxed."""

    threat: Threat
    steps: int = 10
    alpha: float | None = None  # None: 2.5 * eps / steps
    beta: float = 1.0
    random_start: bool = True
    bn_mode: Literal["eval", "train"] = "eval"

    def __call__(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, perf: Performance = DEFAULT
    ) -> torch.Tensor:
        """clip(x + beta * adv + (1 - beta) * rand) (Gao et al. Sec. III-E): the random corner
        is mixed unclipped and the sum clipped once, as the paper writes it."""
        t = self.threat
        rand = t.corners(x) if self.beta < 1 else None
        if self.beta == 0:
            return t.apply(x, rand)
        alpha = self.alpha if self.alpha is not None else 2.5 * t.eps / max(1, self.steps)
        adv = pgd_delta(
            model,
            x,
            y,
            t,
            self.steps,
            alpha,
            random_start=self.random_start,
            bn_mode=self.bn_mode,
            perf=perf,
        )
        delta = adv if rand is None else t.project(relaxed(adv, rand, self.beta), x)
        return t.apply(x, delta)


class PerturbBatch(Hook):
    """A batch recipe: each perturbation acts on the previous one's output (composition) and the
    model trains on the result with the true labels. One with beta 1 is Madry AT; a relaxed
    spatial one then a relaxed L_inf one is CAT (Gao et al. Algorithm 1)."""

    def __init__(self, perturbations: list[Perturbation]) -> None:
        self.perturbations = perturbations

    def transform(self, state, batch: Batch) -> Batch:
        x = batch.x
        for perturb in self.perturbations:
            x = perturb(state.model, x, batch.y, state.perf)
        return Batch(x.detach(), batch.y, batch.idx, batch.loss, batch.info)
