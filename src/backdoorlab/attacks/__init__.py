"""Backdoor attacks: triggers on [0,1] batches and vectorised poisoning, registered by name."""

from backdoorlab.attacks import badnets, blended, lc, none, sig, trojan, wanet  # noqa: F401
from backdoorlab.attacks.base import (
    ATTACKS,
    Attack,
    AttackConfig,
    PoisonedData,
    build_attack,
    register_attack,
)

__all__ = ["ATTACKS", "Attack", "AttackConfig", "PoisonedData", "build_attack", "register_attack"]
