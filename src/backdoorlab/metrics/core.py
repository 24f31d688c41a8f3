"""ACC, ASR and RA as defined in reference-settings.md, computed in batches on the device."""

from __future__ import annotations

from typing import Protocol

import torch
from torch import nn

from backdoorlab.data.base import Dataset
from backdoorlab.data.iterator import BatchIterator
from backdoorlab.records.metrics import Metrics


class Backdoor(Protocol):
    """What ASR needs from an attack: triggered images with target labels, and who counts."""

    def apply(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]: ...

    def asr_mask(self, y: torch.Tensor) -> torch.Tensor: ...


def _eval_mode(model: nn.Module):
    was = model.training
    model.eval()
    return was


@torch.no_grad()
def accuracy(model: nn.Module, data: Dataset, batch_size: int = 512) -> float:
    """ACC: percentage of clean test images classified correctly."""
    was = _eval_mode(model)
    correct = torch.zeros((), dtype=torch.int64, device=data.device)
    for x, y, _ in BatchIterator(data, batch_size):
        correct += (model(x).argmax(1) == y).sum()
    model.train(was)
    return 100.0 * float(correct) / max(1, len(data))


@torch.no_grad()
def backdoor_metrics(
    model: nn.Module, data: Dataset, backdoor: Backdoor, batch_size: int = 512
) -> tuple[float, float]:
    """(ASR, RA) in percent over the triggered test images that `backdoor.asr_mask` selects.

    ASR: share classified as their target label. RA: share still classified as their true label.
    """
    was = _eval_mode(model)
    hit = torch.zeros((), dtype=torch.int64, device=data.device)
    robust = torch.zeros_like(hit)
    total = torch.zeros_like(hit)
    for x, y, _ in BatchIterator(data, batch_size):
        # mask the counts rather than the batch: boolean indexing would sync with the host
        keep = backdoor.asr_mask(y)
        xt, yt = backdoor.apply(x, y)
        pred = model(xt).argmax(1)
        hit += ((pred == yt) & keep).sum()
        robust += ((pred == y) & keep).sum()
        total += keep.sum()
    model.train(was)
    n = max(1, int(total))
    return 100.0 * float(hit) / n, 100.0 * float(robust) / n


def measure(
    model: nn.Module, data: Dataset, backdoor: Backdoor | None, batch_size: int = 512
) -> Metrics:
    """ACC, ASR and RA (percent) of `model` on clean test data; ASR/RA are None without attack."""
    acc = accuracy(model, data, batch_size)
    if backdoor is None:
        return Metrics(acc=acc)
    asr, ra = backdoor_metrics(model, data, backdoor, batch_size)
    return Metrics(acc=acc, asr=asr, ra=ra)


def der(before: Metrics, after: Metrics) -> float | None:
    """Defense effectiveness rating in [0, 1] from ACC/ASR (percent) before and after a defense:
    (max(0, drop of ASR) - max(0, drop of ACC) + 1) / 2 (reference-settings.md; BackdoorBench).
    None without ASR."""
    if before.asr is None or after.asr is None:
        return None
    d_asr = (before.asr - after.asr) / 100
    d_acc = (before.acc - after.acc) / 100
    return (max(0.0, d_asr) - max(0.0, d_acc) + 1) / 2


def pct(v: float | None) -> str:
    """A percentage as the tables print it (two decimals; '-' for none)."""
    return "-" if v is None else f"{v:.2f}"
