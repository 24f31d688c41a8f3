"""The absent attack: clean training for baselines."""

from __future__ import annotations

import torch

from backdoorlab.attacks.base import Attack, AttackConfig, PoisonedData, register_attack
from backdoorlab.data.base import Dataset


@register_attack("none")
class NoAttack(Attack):
    """No backdoor: the training set is left as it is and ASR/RA are not defined."""

    Config = AttackConfig
    plants_backdoor = False

    def trigger(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def poison(self, data: Dataset, generator: torch.Generator) -> PoisonedData:
        return PoisonedData.untouched(data)
