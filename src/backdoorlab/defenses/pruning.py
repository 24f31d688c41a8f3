"""Fine-Pruning (Liu et al. 2018): prune the last layer's least active channels on clean data
until clean accuracy drops by a set amount, then fine-tune."""

from __future__ import annotations

import torch
from pydantic import Field
from torch import nn

from backdoorlab.defenses.base import Defense, DefenseConfig, DefenseContext, register_defense
from backdoorlab.defenses.finetune import need_clean, tune_config
from backdoorlab.errors import ConfigError
from backdoorlab.metrics.core import accuracy
from backdoorlab.train.hooks import Hook
from backdoorlab.train.loop import fit


class FinePruningConfig(DefenseConfig):
    max_acc_drop: float = Field(5.0, ge=0, description="clean-accuracy drop (points) allowed")
    step: float = Field(0.05, gt=0, le=1, description="share of channels pruned per step")
    epochs: int = Field(10, ge=0, description="fine-tuning epochs after pruning")
    lr: float = Field(0.01, gt=0)
    batch_size: int = Field(128, ge=1)


@torch.no_grad()
def channel_activity(model: nn.Module, data, batch_size: int = 512) -> torch.Tensor:
    """Mean activation of every penultimate channel (the last layer's pooled output) on `data`."""
    model.eval()
    total = None
    for start in range(0, len(data), batch_size):
        idx = torch.arange(start, min(start + batch_size, len(data)), device=data.device)
        f = model.features(data.floats(idx)).sum(0)
        total = f if total is None else total + f
    return total / len(data)


def prune_channels(model: nn.Module, channels: torch.Tensor) -> None:
    """Remove `channels` of the penultimate layer: their columns of the final linear layer are
    zeroed, which is exact because the head only pools them (the weights stay loadable)."""
    with torch.no_grad():
        model.fc.weight[:, channels] = 0


class _KeepPruned(Hook):
    def __init__(self, channels: torch.Tensor) -> None:
        self.channels = channels

    def on_step_end(self, state, batch, loss) -> None:
        prune_channels(state.model, self.channels)


@register_defense("fp", config=FinePruningConfig)
class FinePruning(Defense):
    """Prune dormant last-layer channels (by clean activation), then fine-tune on clean data."""

    post_training = True

    def repair(self, model: nn.Module, ctx: DefenseContext) -> nn.Module:
        c = self.cfg
        clean = need_clean(ctx, "fp")
        if not hasattr(model, "features") or not isinstance(getattr(model, "fc", None), nn.Linear):
            raise ConfigError("defense fp needs a backdoorlab Classifier (features + fc)")
        order = channel_activity(model, clean).argsort()  # least active first
        n = order.numel()
        base = accuracy(model, clean)
        original = model.fc.weight.detach().clone()
        pruned = order[:0]
        self.steps: list[dict[str, float]] = [{"pruned": 0, "clean_acc": base}]
        k = 0
        while True:
            k_next = min(n - 1, k + max(1, round(c.step * n)))
            if k_next == k:
                break
            prune_channels(model, order[:k_next])
            acc = accuracy(model, clean)
            self.steps.append({"pruned": k_next, "clean_acc": acc})
            if base - acc > c.max_acc_drop:
                break
            k, pruned = k_next, order[:k_next]
        with torch.no_grad():  # undo the step that went too far
            model.fc.weight.copy_(original)
        prune_channels(model, pruned)
        self.pruned = int(pruned.numel())
        self.channels = n
        if c.epochs:
            cfg = tune_config(ctx, c.epochs, c.lr, c.batch_size, augment=True)
            fit(model, clean, cfg, [_KeepPruned(pruned)], seed=ctx.seed, progress=False)
        return model

    def report(self) -> dict[str, object]:
        """How many channels were pruned, and the clean accuracy at each pruning step."""
        return {"fp_pruned": self.pruned, "fp_channels": self.channels, "fp_steps": self.steps}
