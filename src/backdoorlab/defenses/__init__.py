"""Defenses: training-time recipes and post-training repairs, registered by name."""

from backdoorlab.defenses import abl, adversarial, dpsgd, finetune, mixing  # noqa: F401
from backdoorlab.defenses.base import (
    DEFENSES,
    Defense,
    DefenseConfig,
    DefenseContext,
    NoDefense,
    build_defense,
    register_defense,
)

__all__ = [
    "DEFENSES",
    "Defense",
    "DefenseConfig",
    "DefenseContext",
    "NoDefense",
    "build_defense",
    "register_defense",
]
