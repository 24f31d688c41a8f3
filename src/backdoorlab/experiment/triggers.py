"""The `triggers` command: show what an attack does to test images."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from backdoorlab.errors import ConfigError
from backdoorlab.experiment.config import ExperimentConfig, load_config
from backdoorlab.experiment.plots import save_trigger_grid
from backdoorlab.experiment.runner import prepare


def plot_triggers(
    config: str | Path | dict[str, Any] | ExperimentConfig,
    out: str | Path,
    *,
    overrides: list[str] | None = None,
    count: int = 8,
) -> Path:
    """Write a PNG grid of `count` clean test images, their triggered versions and the change."""
    if count < 1:
        raise ConfigError("count must be at least 1")
    cfg = load_config(config, overrides)
    prep = prepare(cfg, progress=True)
    test = prep.splits.test
    keep = torch.nonzero(prep.attack.asr_mask(test.labels)).flatten()
    g = torch.Generator().manual_seed(cfg.seed)
    pick = keep[torch.randperm(len(keep), generator=g)[:count].to(keep.device)]
    x, y = test.floats(pick), test.labels[pick]
    xt, yt = prep.attack.apply(x, y)
    names = test.classes
    titles = [f"{names[int(a)]} -> {names[int(b)]}" for a, b in zip(y, yt, strict=True)]
    heading = f"{cfg.attack.name} on {cfg.dataset.name} ({prep.poisoned.count} poisoned)"
    return save_trigger_grid(x, xt, titles, out, heading)
