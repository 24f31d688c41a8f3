"""Anti-Backdoor Learning (Li et al. 2021) as a training-time baseline (Gao Table VII).

Isolation: `isolation_epochs` of training on the loss-guarded objective sign(L - gamma) * L on
the batch-mean loss, which lets poisoned samples (learned fastest) sink below gamma while clean
ones hover near it; the lowest-loss share of the training set is isolated. Then (optional) the
run's `train.epochs` on the rest, from the same weights, and, as training ends, gradient ascent
on the isolated samples (unlearning). All three phases are one hook of the training loop.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from pydantic import Field

from backdoorlab.data.base import Dataset
from backdoorlab.defenses.base import Defense, DefenseConfig, DefenseContext, register_defense, tune
from backdoorlab.train.hooks import Batch, Hook
from backdoorlab.train.loop import fit


class ABLConfig(DefenseConfig):
    isolation_epochs: int = Field(
        20, ge=1, description="epochs of loss-guarded training before train.epochs on the rest"
    )
    gamma: float = Field(0.5, ge=0, description="loss floor of the isolation objective")
    isolation_ratio: float = Field(0.01, gt=0, lt=1, description="share of samples isolated")
    train_on_rest: bool = Field(True, description="then train train.epochs without them")
    unlearning_epochs: int = Field(5, ge=0, description="gradient-ascent epochs on the isolated")
    unlearning_lr: float = Field(5e-4, gt=0)
    unlearning_batch_size: int = Field(64, ge=1)


@torch.no_grad()
def per_sample_loss(model: torch.nn.Module, data: Dataset, batch_size: int = 512) -> torch.Tensor:
    """Cross-entropy of every training sample (eval mode, no augmentation)."""
    was_training = model.training
    model.eval()
    out = []
    for start in range(0, len(data), batch_size):
        idx = torch.arange(start, min(start + batch_size, len(data)), device=data.device)
        out.append(F.cross_entropy(model(data.floats(idx)), data.labels[idx], reduction="none"))
    model.train(was_training)
    return torch.cat(out)


def isolate(losses: torch.Tensor, ratio: float) -> torch.Tensor:
    """Indices of the ceil(ratio * N) lowest losses."""
    k = max(1, math.ceil(ratio * losses.numel()))
    return torch.topk(losses, k, largest=False).indices.sort().values


class _LossGuarded(Hook):
    """The isolation objective sign(L - gamma) * L on the batch-mean loss (ABL Eq. 3)."""

    def __init__(self, gamma: float) -> None:
        self.gamma = gamma

    def transform(self, state, batch: Batch) -> Batch:
        y, gamma = batch.y, self.gamma

        def loss(logits: torch.Tensor) -> torch.Tensor:
            ce = F.cross_entropy(logits, y)
            return torch.sign(ce - gamma) * ce

        return Batch(batch.x, y, batch.idx, loss=loss, info=batch.info)


class ABLHook(Hook):
    """Before training: the isolation phase; during training: batches without the isolated;
    at its end: unlearning of the isolated, and the isolation's numbers in `ctx.findings`."""

    def __init__(self, cfg: ABLConfig, ctx: DefenseContext) -> None:
        self.cfg = cfg
        self.ctx = ctx
        self.isolated: torch.Tensor | None = None
        self.losses: torch.Tensor | None = None  # every sample's loss after isolation
        self.mask: torch.Tensor | None = None
        self.history: list[dict[str, float]] = []

    def on_fit_start(self, state) -> None:
        # Isolation is a phase of its own with the run's optimiser settings and a schedule over
        # its own epochs, as in the authors' code (a separate isolation training), followed by
        # training on the rest from the same weights.
        c = self.cfg
        phase = state.config.model_copy(
            update={"epochs": c.isolation_epochs, "eval_every": 0, "milestones": []}
        )
        if phase.schedule == "step":
            phase = phase.model_copy(update={"schedule": "cosine"})
        iso = fit(
            state.model,
            state.data,
            phase,
            [_LossGuarded(c.gamma)],
            seed=self.ctx.seed,
            progress=False,
            description="abl isolation",
            perf=state.perf,
        )
        self.history = iso.history
        self.losses = per_sample_loss(state.model, state.data, state.config.eval_batch_size)
        self.isolated = isolate(self.losses, c.isolation_ratio)
        self.mask = torch.zeros(len(state.data), dtype=torch.bool, device=state.data.device)
        self.mask[self.isolated] = True
        state.model.train()
        if not c.train_on_rest:
            state.stop = True

    def transform(self, state, batch: Batch) -> Batch:
        keep = ~self.mask[batch.idx]
        if not bool(keep.any()):
            # a batch made only of isolated samples: a step that changes nothing
            return Batch(batch.x, batch.y, batch.idx, loss=lambda lg: lg.sum() * 0.0)
        return Batch(batch.x[keep], batch.y[keep], batch.idx[keep], info=batch.info)

    def on_fit_end(self, state) -> None:
        if self.isolated is None:
            return
        # the isolation is decided: its precision may now be measured against the truth
        truth = self.ctx.audit() if self.ctx.audit is not None else None
        self.ctx.findings.update(isolation_numbers(self.isolated, self.losses, truth))
        c = self.cfg
        if c.unlearning_epochs == 0:
            return
        # ascent drives accuracy on the isolated set down on purpose
        tune(state.model, self.ctx.train.subset(self.isolated), self.ctx,
             epochs=c.unlearning_epochs, lr=c.unlearning_lr,
             batch_size=c.unlearning_batch_size, augment=False, hooks=[_Ascent()],
             description="unlearn", collapse_patience=0)  # fmt: skip


def isolation_numbers(
    isolated: torch.Tensor, losses: torch.Tensor, poisoned: torch.Tensor | None
) -> dict[str, object]:
    """How many samples were isolated, what share of them was truly poisoned (`poisoned`: the
    indices the attack poisoned, None where unknown), and the median isolation loss of the
    poisoned and of the other samples (why it missed)."""
    out: dict[str, object] = {"abl_isolated": int(isolated.numel())}
    if poisoned is None or poisoned.numel() == 0:
        return out
    was = torch.zeros(losses.numel(), dtype=torch.bool, device=losses.device)
    was[poisoned.to(was.device)] = True
    hit = float(was[isolated].sum())
    out["abl_precision"] = 100.0 * hit / isolated.numel()
    out["abl_recall"] = 100.0 * hit / poisoned.numel()
    # + 0.0: a loss of -0.0 (softmax saturated) reads 0.0
    out["abl_loss_poisoned"] = float(losses[was].median()) + 0.0
    out["abl_loss_clean"] = float(losses[~was].median()) + 0.0
    out["abl_loss_cut"] = float(losses[isolated].max()) + 0.0  # every isolated loss <= it
    return out


class _Ascent(Hook):
    def transform(self, state, batch: Batch) -> Batch:
        y = batch.y
        return Batch(batch.x, y, batch.idx, loss=lambda logits: -F.cross_entropy(logits, y))


@register_defense("abl", config=ABLConfig)
class ABL(Defense):
    """Anti-backdoor learning: isolate the lowest-loss samples, then unlearn them (a
    training-time defense: its hook does all of it)."""

    def training_hooks(self, ctx: DefenseContext) -> list[Hook]:
        return [ABLHook(self.cfg, ctx)]
