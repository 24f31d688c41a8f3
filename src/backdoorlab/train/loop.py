"""The one training loop: SGD over device-resident batches, extended through hooks."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import torch
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from backdoorlab.data.base import Dataset
from backdoorlab.data.iterator import Augment, BatchIterator
from backdoorlab.errors import ConfigError, TrainingDivergedError
from backdoorlab.train.config import TrainConfig
from backdoorlab.train.distributed import (
    World,
    agree,
    all_sum,
    average_gradients,
    sync_buffers,
    sync_model,
    world,
)
from backdoorlab.train.hooks import Batch, Hook, TrainState
from backdoorlab.train.optim import build_optimizer, build_scheduler
from backdoorlab.train.perf import DEFAULT, Performance, autocast, prepare_batch, prepare_model


def _progress(enabled: bool) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]} acc {task.fields[acc]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        disable=not enabled,
        transient=False,
    )


def default_step(state: TrainState, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward, loss, backward (the optimiser step is taken by `fit`)."""
    model = state.step_model if state.step_model is not None else state.model
    logits = model(batch.x)
    loss = batch.loss_of(logits)
    loss.backward()
    return loss.detach(), logits.detach()


def _format_record(record: dict[str, float], epochs: int) -> str:
    parts = [
        f"epoch {record['epoch']}/{epochs}",
        f"loss {record['loss']:.4f}",
        f"train acc {record['train_acc']:.2f}",
    ]
    parts += [
        f"{k.removeprefix('test_')} {v:.2f}" for k, v in record.items() if k.startswith("test_")
    ]
    parts.append(f"{record['seconds']:.1f}s")
    return "  ".join(parts)


def _step(hooks: Sequence[Hook], state: TrainState, batch: Batch, w: World):
    """The first hook that takes over the step does it; otherwise the default step. A hook's
    step need not go through DDP's forward, so its gradients are averaged over ranks here."""
    for h in hooks:
        result = h.train_step(state, batch)
        if result is not None:
            if w.active:
                average_gradients(state.model.parameters())
            return result
    return default_step(state, batch)


def _wrap(model: nn.Module, device: torch.device) -> DistributedDataParallel:
    if device.type != "cuda":
        return DistributedDataParallel(model)
    index = device.index if device.index is not None else torch.cuda.current_device()
    return DistributedDataParallel(model, device_ids=[index])


# Training accuracy within this many points of chance counts as collapsed, and only after the run
# has once been this many points above chance: strong adversarial training legitimately keeps
# accuracy on its own perturbed batches low, but never back at chance after it has learned.
COLLAPSE_MARGIN = 2.0
LEARNED_MARGIN = 20.0


def _check_collapse(history: list[dict[str, Any]], num_classes: int, patience: int) -> None:
    if patience == 0 or len(history) <= patience:
        return
    chance = 100.0 / max(num_classes, 1)
    recent = [r["train_acc"] for r in history[-patience:]]
    best = max(r["train_acc"] for r in history[:-patience])
    if best >= chance + LEARNED_MARGIN and all(a <= chance + COLLAPSE_MARGIN for a in recent):
        raise TrainingDivergedError(
            f"training diverged: accuracy fell from {best:.1f}% to chance ({chance:.1f}%) for "
            f"{patience} epochs (last {recent[-1]:.1f}% in epoch {history[-1]['epoch']}; try a "
            "lower train.lr or a smaller perturbation budget)"
        )


def _totals(loss_sum: torch.Tensor, correct: torch.Tensor, seen: int, w: World) -> list[float]:
    """(loss sum, correct, seen) of the epoch so far over all ranks (one host sync)."""
    t = torch.stack(
        [
            loss_sum.double(),
            correct.double(),
            torch.tensor(float(seen)).double().to(loss_sum.device),
        ]
    )
    return all_sum(t).tolist() if w.active else t.tolist()


def fit(
    model: nn.Module,
    data: Dataset,
    cfg: TrainConfig,
    hooks: Sequence[Hook] = (),
    *,
    seed: int = 0,
    progress: bool = True,
    description: str = "train",
    perf: Performance = DEFAULT,
) -> TrainState:
    """Train `model` on `data` in place and return the final state (with per-epoch history).

    `perf` is how the work runs (memory layout, bf16 autocast, torch.compile); hooks find it in
    `state.perf` for the PGD they run.

    Under `torchrun` (several ranks) `cfg.batch_size` is the global batch: each rank trains on
    its share and DDP averages the gradients, so the run matches one process on one device.
    """
    w = world()
    progress = progress and w.main
    claim = [type(h).__name__ for h in hooks if type(h).train_step is not Hook.train_step]
    if len(claim) > 1:  # the loop would silently run the first and drop the others
        raise ConfigError(
            f"hooks {' and '.join(claim)} both take over the training step; only one may "
            "(e.g. a per-batch attack and DP-SGD cannot share one loop)"
        )
    iterator = BatchIterator(
        data,
        cfg.batch_size,
        shuffle=True,
        augment=Augment(cfg.crop_padding, cfg.flip) if cfg.crop_padding or cfg.flip else None,
        seed=seed,
        shard=(w.rank, w.size),
    )
    prepare_model(model, perf)
    optimizer = build_optimizer(model, cfg)
    scheduler = build_scheduler(optimizer, cfg, len(iterator))
    # the compiled module shares the parameters; hooks and evaluation run it too
    runner = torch.compile(model) if perf.compile else model
    if w.active:
        stepper = _wrap(model, data.device)  # broadcasts rank 0's weights and buffers
        if perf.compile:
            stepper = torch.compile(stepper)
    else:
        stepper = runner
    state = TrainState(runner, optimizer, scheduler, cfg, data, step_model=stepper, perf=perf)
    for h in hooks:
        h.on_fit_start(state)
    refresh = max(1, len(iterator) // 10)
    with _progress(progress) as bar:
        description = escape(description)  # user text, not Rich markup
        task = bar.add_task(description, total=cfg.epochs * len(iterator), loss="-", acc="-")
        for epoch in range(cfg.epochs):
            if state.stop:  # a hook may stop training before the first epoch, too
                break
            state.epoch = epoch
            model.train()
            for h in hooks:
                h.on_epoch_start(state)
            started = time.perf_counter()
            loss_sum = torch.zeros((), device=data.device)
            correct = torch.zeros((), dtype=torch.int64, device=data.device)
            seen = 0
            for i, (x, y, idx) in enumerate(iterator):
                augment = iterator.reaugment(iterator.choices)
                batch = Batch(prepare_batch(x, perf), y, idx, augment=augment)
                optimizer.zero_grad(set_to_none=True)
                with autocast(data.device, perf):
                    for h in hooks:
                        batch = h.transform(state, batch)
                    loss, logits = _step(hooks, state, batch, w)
                optimizer.step()
                scheduler.step()
                state.step += 1
                loss_sum += loss * len(batch.y)
                correct += (logits.argmax(1) == batch.y).sum()
                seen += len(batch.y)
                for h in hooks:
                    h.on_step_end(state, batch, loss)
                bar.advance(task)
                if (i + 1) % refresh == 0 or i + 1 == len(iterator):
                    # one host sync per tenth of an epoch: live numbers and a divergence check
                    totals = _totals(loss_sum, correct, seen, w)
                    mean_loss = totals[0] / totals[2]
                    if not math.isfinite(mean_loss):
                        raise TrainingDivergedError(
                            f"training diverged: loss is {mean_loss} in epoch {epoch + 1} "
                            f"(try a lower train.lr than {cfg.lr})"
                        )
                    bar.update(
                        task,
                        description=f"{description} {epoch + 1}/{cfg.epochs}",
                        loss=f"{mean_loss:.3f}",
                        acc=f"{100 * totals[1] / totals[2]:.1f}",
                    )
            # the ranks' BatchNorm statistics drift apart between DDP's broadcasts
            sync_buffers(model)
            record = {
                "epoch": epoch + 1,
                "loss": totals[0] / totals[2],
                "train_acc": 100.0 * totals[1] / totals[2],
                "lr": optimizer.param_groups[0]["lr"],
                "seconds": time.perf_counter() - started,
            }
            for h in hooks:
                h.on_epoch_end(state, record)
            if w.active:
                state.stop = agree(state.stop)
            state.history.append(record)
            if progress:
                bar.console.print(_format_record(record, cfg.epochs))
            _check_collapse(state.history, len(data.classes), cfg.collapse_patience)
    for h in hooks:
        h.on_fit_end(state)
    sync_model(model)  # hooks may pick weights by their own measurements (AFT's best step)
    model.eval()
    # the DDP wrapper must not outlive this fit: one still alive when its process group is gone
    # aborts the process as it exits (gloo's "terminate called without an active exception")
    state.step_model = None
    return state
