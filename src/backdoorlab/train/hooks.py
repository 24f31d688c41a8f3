"""Hooks through which attacks and defenses extend the one training loop."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from backdoorlab.train.perf import DEFAULT, Performance

if TYPE_CHECKING:
    from torch import nn

    from backdoorlab.data.base import Dataset
    from backdoorlab.train.config import TrainConfig


@dataclass
class Batch:
    """One training batch: [0,1] images, labels, dataset indices, and the loss to minimise.

    `loss` maps logits to a scalar; recipes that mix labels (mixup) replace it. `augment(x, rows)`
    gives images x the augmentation that rows `rows` of this batch received (identity without
    augmentation), for a recipe that must change the images before they are augmented.
    """

    x: torch.Tensor
    y: torch.Tensor
    idx: torch.Tensor
    loss: Callable[[torch.Tensor], torch.Tensor] | None = None
    info: dict[str, Any] = field(default_factory=dict)
    augment: Callable[[torch.Tensor, slice], torch.Tensor] | None = None

    def augmented(self, x: torch.Tensor, rows: slice) -> torch.Tensor:
        """`x` (un-augmented images for rows `rows`) augmented as those rows were."""
        return x if self.augment is None else self.augment(x, rows)

    def loss_of(self, logits: torch.Tensor) -> torch.Tensor:
        return self.loss(logits) if self.loss is not None else F.cross_entropy(logits, self.y)


@dataclass
class TrainState:
    """What hooks may read and change while `fit` runs.

    `model` is the model hooks craft with, evaluate and read weights from; `step_model` is the
    one a training step's forward runs (the same model, wrapped by DDP in a distributed run).
    """

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    config: TrainConfig
    data: Dataset
    step_model: nn.Module | None = None
    perf: Performance = DEFAULT  # how the work runs: hooks pass it to the PGD they run
    epoch: int = 0
    step: int = 0
    stop: bool = False
    history: list[dict[str, float]] = field(default_factory=list)


class Hook:
    """Override any subset; every method is called in hook order by `fit`.

    A *batch recipe* (AT, CAT, mixup...) overrides `transform`. A hook that changes the step
    itself (DP-SGD) overrides `train_step` and returns (loss, logits) after calling backward.
    """

    def on_fit_start(self, state: TrainState) -> None: ...

    def on_epoch_start(self, state: TrainState) -> None: ...

    def transform(self, state: TrainState, batch: Batch) -> Batch:
        return batch

    def train_step(
        self, state: TrainState, batch: Batch
    ) -> tuple[torch.Tensor, torch.Tensor] | None:
        return None

    def on_step_end(self, state: TrainState, batch: Batch, loss: torch.Tensor) -> None: ...

    def on_epoch_end(self, state: TrainState, record: dict[str, float]) -> None: ...

    def on_fit_end(self, state: TrainState) -> None: ...
