"""Optimiser and learning-rate schedule factories (schedules stepped once per batch)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.optim.lr_scheduler import LRScheduler

from backdoorlab.train.config import TrainConfig


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """SGD with momentum, weight decay and optional Nesterov."""
    return torch.optim.SGD(
        model.parameters(),
        lr=cfg.lr,
        momentum=cfg.momentum,
        weight_decay=cfg.weight_decay,
        nesterov=cfg.nesterov and cfg.momentum > 0,
    )


def _constant(opt, cfg, steps_per_epoch):
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)


def _step(opt, cfg, steps_per_epoch):
    milestones = [m * steps_per_epoch for m in cfg.milestones]
    return torch.optim.lr_scheduler.MultiStepLR(opt, milestones, gamma=cfg.gamma)


def _cosine(opt, cfg, steps_per_epoch):
    return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs * steps_per_epoch)


def _onecycle(opt, cfg, steps_per_epoch):
    return torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=cfg.lr, total_steps=cfg.epochs * steps_per_epoch
    )


SCHEDULES: dict[str, Callable[[torch.optim.Optimizer, TrainConfig, int], LRScheduler]] = {
    "constant": _constant,
    "step": _step,
    "cosine": _cosine,
    "onecycle": _onecycle,
}


def build_scheduler(
    opt: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int
) -> LRScheduler:
    """The per-batch learning-rate schedule that `cfg.schedule` names."""
    return SCHEDULES[cfg.schedule](opt, cfg, steps_per_epoch)
