"""What every analysis loads: a run's model, its test set and its attack, and PGD examples."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from backdoorlab.attacks.base import Attack
from backdoorlab.data.base import Dataset
from backdoorlab.detectors.adv_labels import untargeted_examples
from backdoorlab.errors import ConfigError
from backdoorlab.experiment.config import load_config
from backdoorlab.experiment.prepare import prepare
from backdoorlab.experiment.runner import load_model
from backdoorlab.perturb.threats import LinfBall
from backdoorlab.records.files import write_json
from backdoorlab.records.record import read_run


@dataclass
class LoadedRun:
    """A finished run's model (eval mode), its test set and its (fitted) attack."""

    name: str
    model: nn.Module
    test: Dataset
    attack: Attack
    target: int | None


def load_run(run_dir: str | Path) -> LoadedRun:
    """Rebuild a run's test set and attack (learned triggers from its poison.safetensors)."""
    record = read_run(run_dir)
    cfg = load_config(record.config)
    prep = prepare(cfg, trigger_from=run_dir)
    model = load_model(run_dir, prep.device)
    target = record.config["attack"].get("target")
    return LoadedRun(record.name, model, prep.splits.test, prep.attack, target)


def same_test_set(a: LoadedRun, b: LoadedRun) -> None:
    """Refuse to compare runs whose test sets differ."""
    if len(a.test) != len(b.test) or not torch.equal(a.test.labels, b.test.labels):
        raise ConfigError(f"runs {a.name} and {b.name} do not share a test set")


def paired_runs(
    infected: str | Path, benign: str | Path, limit: int | None
) -> tuple[LoadedRun, LoadedRun, Dataset]:
    """An infected and a benign run that share a test set, and the first `limit` of the test
    images the attack counts for ASR (all of them with None)."""
    inf, ben = load_run(infected), load_run(benign)
    same_test_set(inf, ben)
    keep = inf.attack.asr_mask(inf.test.labels).nonzero().squeeze(1)
    return inf, ben, inf.test.subset(keep if limit is None else keep[:limit])


def untargeted_predictions(
    model: nn.Module,
    data: Dataset,
    eps: float,
    steps: int,
    alpha: float | None = None,
    batch_size: int = 256,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Untargeted L_inf PGD examples of `data` and the labels `model` gives them; the random
    starts are drawn from `seed`, so an analysis gives the same numbers each time it runs."""
    devices = [data.device] if data.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):  # the caller's random state is left alone
        torch.manual_seed(seed)
        adv, labels = untargeted_examples(
            model, data, LinfBall(eps), steps, alpha or 2.5 * eps / steps, batch_size=batch_size
        )
    assert adv is not None and labels is not None
    return adv, labels


def publish(
    result: dict[str, Any], out: str | Path, stem: str, plot: Callable[[dict[str, Any], Path], None]
) -> dict[str, Any]:
    """Write an analysis's `result` as `out`/`stem`.json and its figure as `stem`.png."""
    out = Path(out)
    write_json(out / f"{stem}.json", result)
    plot(result, out / f"{stem}.png")
    return result
