"""The absent attack: clean training for baselines."""

from __future__ import annotations

import torch

from backdoorlab.attacks.base import Attack, AttackConfig, register_attack


@register_attack("none")
class NoAttack(Attack):
    """No backdoor: the training set is left as it is and ASR/RA are not defined."""

    Config = AttackConfig
    plants_backdoor = False
    stores_poison = False

    def trigger(self, x: torch.Tensor) -> torch.Tensor:
        return x
