"""Training: one loop with hooks, optimiser/schedule factories."""

from backdoorlab.train.config import TrainConfig
from backdoorlab.train.hooks import Batch, Hook, TrainState
from backdoorlab.train.loop import default_step, fit
from backdoorlab.train.optim import SCHEDULES, build_optimizer, build_scheduler

__all__ = [
    "SCHEDULES",
    "Batch",
    "Hook",
    "TrainConfig",
    "TrainState",
    "build_optimizer",
    "build_scheduler",
    "default_step",
    "fit",
]
