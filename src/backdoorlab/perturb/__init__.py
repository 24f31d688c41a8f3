"""Adversarial perturbations: threat models, PGD, the adversarial batch recipe."""

from backdoorlab.perturb.pgd import AdversarialBatch, pgd
from backdoorlab.perturb.threats import L2Ball, LinfBall, Threat

__all__ = ["AdversarialBatch", "L2Ball", "LinfBall", "Threat", "pgd"]
