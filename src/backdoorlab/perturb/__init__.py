"""Adversarial perturbations: threat models, PGD, random/relaxed perturbations, recipes."""

from backdoorlab.perturb.flow import warp
from backdoorlab.perturb.pgd import PerturbBatch, Stage, pgd, pgd_delta, relaxed
from backdoorlab.perturb.threats import THREATS, FlowField, L2Ball, LinfBall, Threat

__all__ = [
    "THREATS",
    "FlowField",
    "L2Ball",
    "LinfBall",
    "PerturbBatch",
    "Stage",
    "Threat",
    "pgd",
    "pgd_delta",
    "relaxed",
    "warp",
]
