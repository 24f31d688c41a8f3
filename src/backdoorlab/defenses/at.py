"""Training-time defenses by perturbation: adversarial training (AT), random perturbation of
the same budget, and Composite AT (Gao et al. Algorithm 1). Each is a batch recipe."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from backdoorlab.defenses.base import Defense, DefenseConfig, DefenseContext, register_defense
from backdoorlab.perturb.pgd import Perturbation, PerturbBatch
from backdoorlab.perturb.threats import THREATS
from backdoorlab.train.hooks import Hook

# spatial: a per-pixel flow field (Xiao et al.; Gao's spatial AT); affine: the six parameters of
# an affine map (Gao's random spatial perturbation, Sec. III-D-1)
ThreatName = Literal["linf", "l2", "spatial", "affine"]


class CraftingConfig(DefenseConfig):
    """How adversarial examples are crafted while training."""

    steps: int = Field(10, ge=1, description="PGD steps")
    alpha: float | None = Field(None, gt=0, description="PGD step size (default 2.5*eps/steps)")
    random_start: bool = True
    bn_mode: Literal["eval", "train"] = Field("eval", description="BatchNorm while crafting")


class ATConfig(CraftingConfig):
    threat: ThreatName = "linf"
    eps: float = Field(
        8 / 255, gt=0, description="budget (pixels: linf/l2; flow: spatial; parameters: affine)"
    )
    beta: float = Field(1.0, ge=0, le=1, description="relaxation: 1 adversarial, 0 random")


class RandomConfig(DefenseConfig):
    threat: ThreatName = "linf"
    eps: float = Field(8 / 255, gt=0)


class CATConfig(CraftingConfig):
    eps_s: float = Field(0.05, gt=0, description="spatial (flow-field) budget")
    eps_l: float = Field(4 / 255, gt=0, description="L_inf budget")
    beta: float = Field(0.8, ge=0, le=1, description="relaxation of both perturbations")
    alpha_s: float | None = Field(None, gt=0, description="spatial step (default 2.5*eps/steps)")


@register_defense("at", config=ATConfig)
class AdversarialTraining(Defense):
    """Train on (relaxed) PGD examples of one threat model: linf, l2 or spatial."""

    def training_hooks(self, ctx: DefenseContext) -> list[Hook]:
        c = self.cfg
        perturb = Perturbation(
            THREATS[c.threat](c.eps), c.steps, c.alpha, c.beta, c.random_start, c.bn_mode
        )
        return [PerturbBatch([perturb])]


@register_defense("random", config=RandomConfig)
class RandomPerturbation(Defense):
    """Train on random perturbations at the corners of the same budget (Gao Tables I-II);
    `threat: affine` draws Gao's random spatial transform, `spatial` a random flow field."""

    def training_hooks(self, ctx: DefenseContext) -> list[Hook]:
        return [PerturbBatch([Perturbation(THREATS[self.cfg.threat](self.cfg.eps), beta=0.0)])]


@register_defense("cat", config=CATConfig)
class CompositeAT(Defense):
    """Composite AT: relaxed spatial, then relaxed L_inf adversarial examples (Gao Alg. 1).

    Per batch: a relaxed spatial adversarial transform (Eq. 2), a relaxed L_inf adversarial
    perturbation of its output (Eq. 3), then one SGD step on the result with the true labels.
    """

    def training_hooks(self, ctx: DefenseContext) -> list[Hook]:
        c = self.cfg
        spatial = Perturbation(
            THREATS["spatial"](c.eps_s), c.steps, c.alpha_s, c.beta, c.random_start, c.bn_mode
        )
        linf = Perturbation(
            THREATS["linf"](c.eps_l), c.steps, c.alpha, c.beta, c.random_start, c.bn_mode
        )
        return [PerturbBatch([spatial, linf])]
