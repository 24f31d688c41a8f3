"""Fine-Pruning (Liu et al. 2018): prune the last layer's least active channels on clean data
until clean accuracy drops by a set amount, then fine-tune.

The stopping rule is Liu et al.'s (`max_acc_drop`). Gao et al. ran it differently for their
Table VII (Sec. IV-A-2): they searched pruning ratios from 5% to 95% in steps of 5% and kept the
one whose clean accuracy was closest to CAT's. `ratio` prunes a fixed share instead of stopping
on the drop; a sweep runs the ratios and the grid report's `closest` keeps Gao's choice
(configs/paper/gao2023/table7.yaml, full profile)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from pydantic import Field
from torch import nn

from backdoorlab.data.base import Dataset
from backdoorlab.defenses.base import (
    CleanRepair,
    DefenseConfig,
    DefenseContext,
    register_defense,
)
from backdoorlab.errors import ConfigError
from backdoorlab.metrics.core import accuracy
from backdoorlab.models.base import Classifier
from backdoorlab.models.layers import capture, default_layer, last_conv, module_named
from backdoorlab.train.hooks import Hook


class FinePruningConfig(DefenseConfig):
    quiet = ("ratio",)  # added after the FP pages ran: without it, their cells keep their keys

    max_acc_drop: float = Field(5.0, ge=0, description="clean-accuracy drop (points) allowed")
    ratio: float | None = Field(
        None, ge=0, lt=1, description="prune this share of the channels (replaces max_acc_drop)"
    )
    step: float = Field(0.05, gt=0, le=1, description="share of channels pruned per step")
    epochs: int = Field(10, ge=0, description="fine-tuning epochs after pruning")
    lr: float = Field(0.01, gt=0)
    batch_size: int = Field(128, ge=1)
    layer: str | None = Field(
        None,
        description="module whose output channels are ranked and pruned (e.g. layer4); default: "
        "a Classifier's last group (exactly, through fc), else the last conv block",
    )


@torch.no_grad()
def channel_activity(
    model: nn.Module, data, batch_size: int = 512, features: Callable | None = None
) -> torch.Tensor:
    """Mean activation of every channel `features` gives ([B, C] per batch; default: the
    penultimate layer, the last group's pooled output) on `data`."""
    features = features or model.features
    model.eval()
    total = None
    for start in range(0, len(data), batch_size):
        idx = torch.arange(start, min(start + batch_size, len(data)), device=data.device)
        f = features(data.floats(idx)).sum(0)
        total = f if total is None else total + f
    return total / len(data)


def prune_channels(model: nn.Module, channels: torch.Tensor) -> None:
    """Remove `channels` of the penultimate layer: their columns of the final linear layer are
    zeroed, which is exact because the head only pools them (the weights stay loadable)."""
    with torch.no_grad():
        model.fc.weight[:, channels] = 0


class HeadPruner:
    """A Classifier's last group, pruned exactly through the columns of fc (the head pools)."""

    def __init__(self, model: Classifier) -> None:
        self.model = model
        self.original = model.fc.weight.detach().clone()

    def activity(self, data) -> torch.Tensor:
        return channel_activity(self.model, data)

    def prune(self, channels: torch.Tensor) -> None:
        """Exactly `channels` pruned (earlier pruning undone)."""
        with torch.no_grad():
            self.model.fc.weight.copy_(self.original)
        self.zero(channels)

    def zero(self, channels: torch.Tensor) -> None:
        prune_channels(self.model, channels)


class ConvPruner:
    """Any model: channels of module `layer`'s output, ranked by their mean activation (forward
    hook) and pruned by zeroing the filters of the last convolution inside `layer`, as
    BackdoorBench prunes PreAct-ResNet's layer4 (the weights stay loadable)."""

    def __init__(self, model: nn.Module, layer: str) -> None:
        self.model, self.layer = model, layer
        self.conv = last_conv(module_named(model, layer))
        self.weight = self.conv.weight.detach().clone()
        self.bias = None if self.conv.bias is None else self.conv.bias.detach().clone()

    def activity(self, data) -> torch.Tensor:
        with capture(self.model, [self.layer]) as out:

            def pooled(x: torch.Tensor) -> torch.Tensor:
                self.model(x)
                a = out[self.layer]
                return a.mean(dim=(2, 3)) if a.ndim == 4 else a

            act = channel_activity(self.model, data, features=pooled)
        if act.numel() != self.conv.out_channels:
            raise ConfigError(
                f"defense fp: layer {self.layer} puts out {act.numel()} channels, its last "
                f"convolution {self.conv.out_channels}; name a layer that ends in a convolution"
            )
        return act

    def prune(self, channels: torch.Tensor) -> None:
        """Exactly `channels` pruned (earlier pruning undone)."""
        with torch.no_grad():
            self.conv.weight.copy_(self.weight)
            if self.bias is not None:
                self.conv.bias.copy_(self.bias)
        self.zero(channels)

    @torch.no_grad()
    def zero(self, channels: torch.Tensor) -> None:
        self.conv.weight[channels] = 0
        if self.conv.bias is not None:
            self.conv.bias[channels] = 0


class _KeepPruned(Hook):
    def __init__(self, pruner: HeadPruner | ConvPruner, channels: torch.Tensor) -> None:
        self.pruner, self.channels = pruner, channels

    def on_step_end(self, state, batch, loss) -> None:
        self.pruner.zero(self.channels)  # fine-tuning must not revive the pruned channels


@register_defense("fp", config=FinePruningConfig)
class FinePruning(CleanRepair):
    """Prune dormant last-layer channels (by clean activation), then fine-tune on clean data."""

    def fix(self, model: nn.Module, clean: Dataset, ctx: DefenseContext) -> nn.Module:
        c = self.cfg
        if c.layer is None and isinstance(model, Classifier):
            pruner: HeadPruner | ConvPruner = HeadPruner(model)
            layer = "fc (last group)"
        else:
            layer = c.layer or default_layer(model, clean.head())
            pruner = ConvPruner(model, layer)
        order = pruner.activity(clean).argsort()  # least active first
        n = order.numel()
        base = accuracy(model, clean)
        pruned = order[:0]
        steps: list[dict[str, float]] = [{"pruned": 0, "clean_acc": base}]
        k = 0
        if c.ratio is not None:  # a fixed share (Gao's grid), no stopping rule
            pruned = order[: round(c.ratio * n)]
            pruner.prune(pruned)
            steps.append({"pruned": int(pruned.numel()), "clean_acc": accuracy(model, clean)})
        while c.ratio is None:
            k_next = min(n - 1, k + max(1, round(c.step * n)))
            if k_next == k:
                break
            pruner.prune(order[:k_next])
            acc = accuracy(model, clean)
            steps.append({"pruned": k_next, "clean_acc": acc})
            if base - acc > c.max_acc_drop:
                break
            k, pruned = k_next, order[:k_next]
        pruner.prune(pruned)  # undo the step that went too far
        # how many channels were pruned, where, and the clean accuracy at each pruning step
        ctx.findings.update(
            fp_layer=layer, fp_pruned=int(pruned.numel()), fp_channels=n, fp_steps=steps
        )
        if c.epochs:
            self.tune(model, clean, ctx, epochs=c.epochs, lr=c.lr, batch_size=c.batch_size,
                      augment=True, hooks=[_KeepPruned(pruner, pruned)],
                      description="fp fine-tune")  # fmt: skip
        return model
