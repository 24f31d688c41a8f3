"""Defenses: training-time recipes and post-training repairs, registered by name."""

from backdoorlab.defenses import (  # noqa: F401
    abl,
    aft,
    at,
    cutmix,
    dpsgd,
    fp,
    ft,
    mixup,
    nad,
    nc,
)
from backdoorlab.defenses.base import (
    DEFENSES,
    CleanRepair,
    Defense,
    DefenseConfig,
    DefenseContext,
    NoDefense,
    build_defense,
    register_defense,
)

__all__ = [
    "DEFENSES",
    "CleanRepair",
    "Defense",
    "DefenseConfig",
    "DefenseContext",
    "NoDefense",
    "build_defense",
    "register_defense",
]
