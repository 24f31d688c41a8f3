"""The defense interface: training-time hooks (batch recipes) and/or a post-training repair."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from backdoorlab.config_base import Section
from backdoorlab.data.base import Dataset
from backdoorlab.errors import ConfigError
from backdoorlab.records.metrics import Metrics
from backdoorlab.registry import Registry
from backdoorlab.train.config import TrainConfig
from backdoorlab.train.hooks import Batch, Hook, TrainState
from backdoorlab.train.loop import fit
from backdoorlab.train.perf import DEFAULT, Performance


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


@dataclass(kw_only=True)
class DefenseContext:
    """What a defense may see: the (possibly poisoned) training set and the run's settings.

    `clean` is the defender's clean subset (`clean_share` of the training set, drawn by seed
    from the samples the attack left alone). Two views of the ground truth serve a defense's
    own numbers and must never steer a decision: `monitor(model)` returns test ACC/ASR for the
    curves a defense records; `audit()` the indices of the training samples the attack
    poisoned, which a defense compares with what it decided once it has decided (ABL's
    isolation precision). `findings` is where a defense and its hooks put their own numbers
    (JSON values: what was pruned, flagged, isolated); the run stores them as
    `metrics.defense`.
    """

    train: Dataset
    train_config: TrainConfig
    device: torch.device
    seed: int
    clean: Dataset | None = None
    monitor: Callable[[nn.Module], Metrics] | None = None
    audit: Callable[[], torch.Tensor] | None = None
    perf: Performance = DEFAULT  # how the work runs: passed to fit and PGD
    store: Any = None  # a stage cache where a defense may keep what it trains (auto: references)
    progress: bool = False  # progress bars on a defense's long work
    findings: dict[str, Any] = field(default_factory=dict)


class Defense:
    """Base defense: no training hooks, no repair. Subclasses override either or both.

    A defense with `post_training = True` only repairs a finished model: the runner then takes the
    infected model from the stage cache (training and storing it on a miss). `identity` marks the
    no-defense baseline, whose model is the infected model itself. What a defense measures about
    its own work goes into `ctx.findings`; an instance keeps only its settings (and, for
    `repeat`, what its last repair found).
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

    def repeat(self, model: nn.Module, ctx: DefenseContext) -> nn.Module:
        """This repair applied to another model the same way (a benign reference, whose
        repaired copies are the null a rescan compares with): by default a fresh run of the
        same defense; a defense whose repair depends on what it found in the suspect (Neural
        Cleanse's triggers) reuses that."""
        return type(self)(self.cfg).repair(model, ctx)


# -- helpers shared by several defenses ------------------------------------------------------


def tune(
    model: nn.Module,
    data: Dataset,
    ctx: DefenseContext,
    *,
    epochs: int,
    lr: float,
    batch_size: int,
    augment: bool,
    hooks: Sequence[Hook] = (),
    description: str = "tune",
    **settings: Any,
) -> TrainState:
    """Fine-tune `model` in place as a defense does: the run's recipe at a constant lr without
    evaluation (`settings` replace more of it), the run's seed and switches, no progress bar."""
    t = ctx.train_config
    recipe = {
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr,
        "momentum": t.momentum,
        "weight_decay": t.weight_decay,
        "schedule": "constant",
        "crop_padding": t.crop_padding if augment else 0,
        "flip": t.flip if augment else False,
        "eval_every": 0,
        "collapse_patience": t.collapse_patience,
    }
    cfg = TrainConfig(**{**recipe, **settings})
    return fit(
        model, data, cfg, hooks, seed=ctx.seed, progress=False, description=description,
        perf=ctx.perf,
    )  # fmt: skip


def need_clean(ctx: DefenseContext, name: str) -> Dataset:
    """The defender's clean subset; a ConfigError naming defense `name` without one."""
    if ctx.clean is None:
        raise ConfigError(f"defense {name} needs a clean subset (defense.clean_share)")
    return ctx.clean


class MixConfig(DefenseConfig):
    alpha: float = Field(1.0, gt=0, description="lambda ~ Beta(alpha, alpha)")
    prob: float = Field(1.0, ge=0, le=1, description="share of batches that are mixed")


class MixHook(Hook):
    """A batch mixed with a shuffled copy of itself; the loss is the same mixture of the two
    cross-entropies (mixup, CutMix: Gao Tables III-IV)."""

    def __init__(self, cfg: MixConfig, seed: int) -> None:
        self.cfg = cfg
        # own generators, so mixing draws neither shift nor depend on the global RNG
        self.rng = np.random.default_rng(seed)
        self.gen = torch.Generator().manual_seed(seed)

    def mix(self, x: torch.Tensor, x2: torch.Tensor, lam: float) -> tuple[torch.Tensor, float]:
        raise NotImplementedError

    def transform(self, state, batch: Batch) -> Batch:
        if self.rng.random() >= self.cfg.prob:
            return batch
        lam = float(self.rng.beta(self.cfg.alpha, self.cfg.alpha))
        perm = torch.randperm(len(batch.y), generator=self.gen).to(batch.y.device)
        x, lam = self.mix(batch.x, batch.x[perm], lam)
        y, y2 = batch.y, batch.y[perm]
        # per-sample weights of the two labels; they sum to one for every sample
        w1 = torch.full(y.shape, lam, device=y.device)
        w2 = 1 - w1

        def loss(logits: torch.Tensor) -> torch.Tensor:
            ce1 = F.cross_entropy(logits, y, reduction="none")
            ce2 = F.cross_entropy(logits, y2, reduction="none")
            return (w1 * ce1 + w2 * ce2).mean()

        info = {**batch.info, "lam": lam, "weights": (w1, w2), "perm": perm}
        return Batch(x, y, batch.idx, loss=loss, info=info)


class CleanRepair(Defense):
    """A post-training repair on the defender's clean subset; subclasses implement `fix`."""

    post_training = True
    tune = staticmethod(tune)  # how subclasses fine-tune

    def repair(self, model: nn.Module, ctx: DefenseContext) -> nn.Module:
        return self.fix(model, need_clean(ctx, self.cfg.name), ctx)

    def fix(self, model: nn.Module, clean: Dataset, ctx: DefenseContext) -> nn.Module:
        """The repaired model, from `model` and the clean subset `clean`."""
        raise NotImplementedError


@register_defense("none")
class NoDefense(Defense):
    """Standard training and no repair."""

    post_training = True  # its model is the infected model: sweeps share it with the repairs
    identity = True


def build_defense(cfg: DefenseConfig) -> Defense:
    """Construct the defense that `cfg` names."""
    return DEFENSES.get(cfg.name)(cfg)
