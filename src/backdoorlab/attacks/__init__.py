"""Backdoor attacks: triggers on [0,1] batches and vectorised poisoning, registered by name."""

from backdoorlab.attacks import badnets, blended, none  # noqa: F401
from backdoorlab.attacks.base import (
    ATTACKS,
    Attack,
    AttackConfig,
    PoisonedData,
    build_attack,
    register_attack,
)

__all__ = ["ATTACKS", "Attack", "AttackConfig", "PoisonedData", "build_attack", "register_attack"]
