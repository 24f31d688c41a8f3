"""Adversarial Fine-Tuning (AFT, Mu et al. Algorithm 1), with and without clean data.

Without clean data, Mu et al. give no rule for when to stop fine-tuning on the poisoned set. The
`early_stop` criterion here is this project's own: every `check_every` steps, craft adversarial
examples of a probe set and keep the weights whose adversarial labels concentrate least on one
class (an infected model's adversarial examples pile up on its target, Mu Fig. 1)."""

from __future__ import annotations

import copy
from typing import Literal

import torch
from pydantic import Field
from torch import nn

from backdoorlab.data.base import Dataset
from backdoorlab.data.iterator import Augment
from backdoorlab.defenses.base import (
    Defense,
    DefenseConfig,
    DefenseContext,
    need_clean,
    register_defense,
    tune,
)
from backdoorlab.detectors.adv_labels import untargeted_examples
from backdoorlab.perturb.threats import THREATS, Threat
from backdoorlab.seeds import AFT_PROBE, stream
from backdoorlab.train.hooks import Batch, Hook, TrainState


class AFTConfig(DefenseConfig):
    quiet = ("norm", "augment")  # added after the AFT pages ran: their cells keep their keys

    data: Literal["clean", "poisoned"] = Field(
        "clean", description="craft from the clean subset, or from the poisoned training set"
    )
    norm: Literal["linf", "l2"] = Field(
        "linf", description="threat model of the untargeted PGD (Mu et al.: linf)"
    )
    eps: float = Field(6 / 255, gt=0, description="budget of the untargeted PGD (in its norm)")
    steps: int = Field(7, ge=1)
    alpha: float | None = Field(None, gt=0, description="PGD step (default eps/5)")
    epochs: int = Field(5, ge=1, description="stage-2 epochs over the adversarial examples")
    lr: float = Field(0.001, gt=0)
    batch_size: int = Field(128, ge=1)
    clean_epochs: int = Field(0, ge=0, description="stage 3: clean fine-tuning (clean data only)")
    augment: bool = Field(
        True,
        description="without clean data: augment each poisoned sample (the run's crops and "
        "flips) before crafting (Mu et al. Sec. IV-E-2; False: their Table X ablation)",
    )
    early_stop: bool = Field(
        True,
        description="without clean data: keep the step whose adversarial labels spread most "
        "(this project's criterion; Mu et al. give none)",
    )
    check_every: int = Field(10, ge=1, description="steps between early-stopping checks")
    check_size: int = Field(512, ge=32, description="samples crafted for each check")
    curve_every: int = Field(5, ge=1, description="steps between recorded ACC/ASR points")


def label_concentration(labels: torch.Tensor) -> float:
    """Share of adversarial labels that are the single most frequent class (Mu Fig. 1)."""
    return float(torch.bincount(labels).max()) / len(labels)


class _SwapIn(Hook):
    """Stage 2's batches: the crafted adversarial examples of the batch's samples."""

    def __init__(self, adv: torch.Tensor) -> None:
        self.adv = adv

    def transform(self, state: TrainState, batch: Batch) -> Batch:
        return Batch(self.adv[batch.idx], batch.y, batch.idx, batch.loss, batch.info)


class _Watch(Hook):
    """Records ACC/ASR (for the curve only) and, optionally, early-stops on defender data.

    The early-stopping signal is the concentration of untargeted adversarial labels on fresh
    PGD examples of a fixed slice of the defender's data: an infected model sends most of them
    to the target class (Mu Fig. 1); as the backdoor fades they spread out, and when fine-tuning
    re-learns the poisoned samples they concentrate again. The weights with the lowest
    concentration are kept. No trigger and no ASR enter the decision.
    """

    def __init__(self, cfg: AFTConfig, ctx: DefenseContext, probe: Dataset, threat: Threat):
        self.cfg, self.ctx, self.probe, self.threat = cfg, ctx, probe, threat
        self.curve: list[dict[str, float | None]] = []
        self.checks: list[dict[str, float]] = []
        self.best: tuple[float, int, dict[str, torch.Tensor]] | None = None

    def _record(self, state: TrainState) -> None:
        if self.ctx.monitor is not None:
            was = state.model.training
            m = self.ctx.monitor(state.model)
            state.model.train(was)
            self.curve.append({"step": state.step, "acc": m.acc, "asr": m.asr})

    def _check(self, state: TrainState) -> None:
        c = self.cfg
        alpha = c.alpha or c.eps / 5
        size = len(self.probe)  # one batch
        _, labels = untargeted_examples(
            state.model, self.probe, self.threat, c.steps, alpha, batch_size=size, images=False,
            perf=state.perf,
        )  # fmt: skip
        conc = label_concentration(labels)
        self.checks.append({"step": state.step, "concentration": 100 * conc})
        if self.best is None or conc < self.best[0]:
            weights = copy.deepcopy(state.model.state_dict())
            self.best = (conc, state.step, weights)

    def on_fit_start(self, state: TrainState) -> None:
        self._record(state)
        if self.cfg.early_stop and self.cfg.data == "poisoned":
            self._check(state)

    def on_step_end(self, state: TrainState, batch: Batch, loss: torch.Tensor) -> None:
        if state.step % self.cfg.curve_every == 0:
            self._record(state)
        if self.cfg.early_stop and self.cfg.data == "poisoned":
            if state.step % self.cfg.check_every == 0:
                self._check(state)

    def on_fit_end(self, state: TrainState) -> None:
        if self.best is not None:
            state.model.load_state_dict(self.best[2])


@register_defense("aft", config=AFTConfig)
class AdversarialFineTuning(Defense):
    """Fine-tune the infected model on its own untargeted PGD examples (Mu et al. Alg. 1)."""

    post_training = True

    def repair(self, model: nn.Module, ctx: DefenseContext) -> nn.Module:
        c = self.cfg
        threat = THREATS[c.norm](c.eps)
        alpha = c.alpha or c.eps / 5
        if c.data == "clean":
            data, augment = need_clean(ctx, "aft"), None
        else:
            t = ctx.train_config
            data = ctx.train
            wanted = c.augment and (t.crop_padding or t.flip)
            augment = Augment(t.crop_padding, t.flip) if wanted else None
        adv, _ = untargeted_examples(
            model, data, threat, c.steps, alpha, augment=augment, seed=ctx.seed, labels=False,
            perf=ctx.perf,
        )  # fmt: skip
        gen = torch.Generator().manual_seed(stream(ctx.seed, AFT_PROBE))
        probe = data.subset(torch.randperm(len(data), generator=gen)[: c.check_size])
        watch = _Watch(c, ctx, probe, threat)
        hooks = [_SwapIn(adv), watch]
        tune(model, data, ctx, epochs=c.epochs, lr=c.lr, batch_size=c.batch_size, augment=False,
             hooks=hooks, description="aft")  # fmt: skip
        if c.clean_epochs and c.data == "clean":
            tune(model, data, ctx, epochs=c.clean_epochs, lr=c.lr, batch_size=c.batch_size,
                 augment=True, description="aft stage 3")  # fmt: skip
        # the ACC/ASR curve over fine-tuning steps and the early-stopping checks
        ctx.findings["aft_curve"] = watch.curve
        if watch.checks:
            ctx.findings["aft_checks"] = watch.checks
            ctx.findings["aft_stopped_at_step"] = watch.best[1] if watch.best else None
        return model
