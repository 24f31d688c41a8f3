"""The defense interface: training-time hooks (batch recipes) and/or a post-training repair."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from pydantic import Field
from torch import nn

from backdoorlab.attacks.base import PoisonedData
from backdoorlab.config_base import Section
from backdoorlab.data.base import Dataset
from backdoorlab.registry import Registry
from backdoorlab.train.config import TrainConfig
from backdoorlab.train.hooks import Hook


class DefenseConfig(Section):
    """Options every defense accepts."""

    clean_share: float = Field(
        0.05,
        gt=0,
        le=1,
        description="clean subset a post-training defense may use: share of the training set",
    )


DEFENSES: Registry = Registry("defense", DefenseConfig)
register_defense = DEFENSES.register


@dataclass
class DefenseContext:
    """What a defense may see: the (possibly poisoned) training set and the run's settings.

    `poisoned` is the attack's bookkeeping; a defense must not read it (it is the ground truth
    that metrics like ABL's isolation precision compare against). `clean` is the defender's
    clean subset (`clean_share` of
    the training set, drawn by seed from the samples the attack left alone). `monitor(model)`
    returns test ACC/ASR for curves a defense records; it must never steer a decision.
    """

    train: Dataset
    train_config: TrainConfig
    device: torch.device
    seed: int
    poisoned: PoisonedData | None = None
    clean: Dataset | None = None
    monitor: Callable[[nn.Module], dict[str, float | None]] | None = None


class Defense:
    """Base defense: no training hooks, no repair. Subclasses override either or both.

    A defense with `post_training = True` only repairs a finished model: the runner then takes the
    infected model from the stage cache (training and storing it on a miss). `identity` marks the
    no-defense baseline, whose model is the infected model itself.
    """

    Config = DefenseConfig
    post_training = False
    identity = False

    def __init__(self, cfg: DefenseConfig) -> None:
        self.cfg = cfg

    def training_hooks(self, ctx: DefenseContext) -> list[Hook]:
        """Hooks (batch recipes) the training loop runs with."""
        return []

    def repair(self, model: nn.Module, ctx: DefenseContext) -> nn.Module:
        """The repaired model after training (post-training defenses)."""
        return model

    def report(self) -> dict[str, object]:
        """Defense-specific numbers to store with the run."""
        return {}


@register_defense("none")
class NoDefense(Defense):
    """Standard training and no repair."""

    post_training = True  # its model is the infected model: sweeps share it with the repairs
    identity = True


def build_defense(cfg: DefenseConfig) -> Defense:
    """Construct the defense that `cfg` names."""
    return DEFENSES.get(cfg.name)(cfg)
