"""Adversarial perturbations: threat models, PGD, random/relaxed perturbations, recipes."""

from backdoorlab.perturb.flow import affine_flow, warp
from backdoorlab.perturb.pgd import Perturbation, PerturbBatch, pgd, pgd_delta, relaxed
from backdoorlab.perturb.threats import (
    THREATS,
    AffineParams,
    FlowField,
    L2Ball,
    LinfBall,
    Threat,
)

__all__ = [
    "THREATS",
    "AffineParams",
    "FlowField",
    "L2Ball",
    "LinfBall",
    "PerturbBatch",
    "Perturbation",
    "Threat",
    "pgd",
    "pgd_delta",
    "affine_flow",
    "relaxed",
    "warp",
]
