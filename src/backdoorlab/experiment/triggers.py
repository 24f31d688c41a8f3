"""Trigger grids: what an attack does to test images."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from backdoorlab.errors import ConfigError
from backdoorlab.experiment.config import ExperimentConfig, load_config
from backdoorlab.experiment.prepare import Prepared, prepare
from backdoorlab.plotting import save_trigger_grid
from backdoorlab.records.record import read_run


def save_attack_grid(prep: Prepared, out: str | Path, count: int = 8) -> Path:
    """PNG of `count` non-target test images (drawn by the run's seed), triggered and changed."""
    test = prep.splits.test
    keep = torch.nonzero(prep.attack.asr_mask(test.labels)).flatten()
    g = torch.Generator().manual_seed(prep.config.seed)
    pick = keep[torch.randperm(len(keep), generator=g)[:count].to(keep.device)]
    x, y = test.floats(pick), test.labels[pick]
    with torch.no_grad():
        xt, yt = prep.attack.apply(x, y)
    names = test.classes
    titles = [f"{names[int(a)]} -> {names[int(b)]}" for a, b in zip(y, yt, strict=True)]
    cfg = prep.config
    poisoned = (
        "poisoned per batch"
        if not prep.attack.stores_poison
        else (f"{prep.poisoned.count} poisoned")
    )
    heading = f"{cfg.attack.name} on {cfg.dataset.name} ({poisoned})"
    return save_trigger_grid(x, xt, titles, out, heading)


def plot_triggers(
    config: str | Path | dict[str, Any] | ExperimentConfig | None,
    out: str | Path,
    *,
    overrides: list[str] | None = None,
    count: int = 8,
    run_dir: str | Path | None = None,
) -> Path:
    """Write a PNG grid of clean test images, their triggered versions and the change.

    With `run_dir`, the config and the learned trigger come from that saved run.
    """
    if count < 1:
        raise ConfigError("count must be at least 1")
    if run_dir is not None:
        config = read_run(run_dir).config
    if config is None:
        raise ConfigError("give a `config` file or a `run_dir`")
    cfg = load_config(config, overrides)
    prep = prepare(cfg, progress=True, trigger_from=run_dir)
    return save_attack_grid(prep, out, count)
