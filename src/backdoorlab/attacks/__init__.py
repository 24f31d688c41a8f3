"""Backdoor attacks: triggers on [0,1] batches and vectorised poisoning, registered by name."""

from backdoorlab.attacks import (  # noqa: F401
    badnets,
    blended,
    iad,
    lc,
    none,
    pattern,
    sig,
    trojan,
    wanet,
)
from backdoorlab.attacks.base import (
    ATTACKS,
    Attack,
    AttackConfig,
    PoisonedData,
    build_attack,
    register_attack,
)

__all__ = ["ATTACKS", "Attack", "AttackConfig", "PoisonedData", "build_attack", "register_attack"]
