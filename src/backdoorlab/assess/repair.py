"""Repair a model with a post-training defense and measure it before and after: the one path a
sweep's repair cell and a user's `backdoorlab repair` take."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from backdoorlab.data.base import Dataset
from backdoorlab.defenses.base import Defense, DefenseContext
from backdoorlab.metrics.core import Backdoor, der, evaluate


@dataclass
class RepairOutcome:
    """The repaired model; ACC/ASR/RA before and after (None without test data, `before` also
    None when not asked for); the defense's own numbers, read once the repair ended; seconds."""

    model: nn.Module
    before: dict[str, float | None] | None
    after: dict[str, float | None] | None
    defense_report: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def der(self) -> float | None:
        """Defense effectiveness rating (None without ASR before and after)."""
        if self.before is None or self.after is None:
            return None
        return der(self.before, self.after)


def repair_and_measure(
    model: nn.Module,
    defense: Defense,
    ctx: DefenseContext,
    test: Dataset | None,
    backdoor: Backdoor | None,
    *,
    batch_size: int = 512,
    measure_before: bool = True,
    seed: int | None = None,
) -> RepairOutcome:
    """`defense` applied to `model` with what `ctx` lets it see (seeded with `seed` when given),
    ACC/ASR/RA on `test` before (if `measure_before`) and after, and the defense's report."""

    def measured(m: nn.Module) -> dict[str, float | None] | None:
        return None if test is None else evaluate(m, test, backdoor, batch_size)

    before = measured(model) if measure_before else None
    t0 = time.perf_counter()
    if seed is not None:
        torch.manual_seed(seed)
    repaired = defense.repair(model, ctx)
    seconds = round(time.perf_counter() - t0, 3)
    return RepairOutcome(repaired, before, measured(repaired), defense.report(), seconds)
