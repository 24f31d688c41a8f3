"""Files of the bring-your-own-model commands: a user's model from a weights file, the repaired
model's folder (weights, result.json, a results-database row) and a scan's JSON and figures."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from torch import nn

from backdoorlab.byo.api import RepairReport, ScanResult
from backdoorlab.data.base import Dataset, InputSpec
from backdoorlab.detectors.base import Detection
from backdoorlab.experiment.artifacts import (
    RUN_MARKER,
    new_run_folder,
    new_run_id,
    save_tensors,
    write_json,
)
from backdoorlab.experiment.runner import store_row, versions
from backdoorlab.experiment.store import ResultStore
from backdoorlab.models.foreign import Normalized, load_foreign
from backdoorlab.plotting import pyplot, save_figure


def user_model(
    weights: str | Path,
    arch: str,
    data: Dataset,
    *,
    options: dict[str, Any] | None = None,
    key_map: str | None = None,
    mean: tuple[float, ...] | None = None,
    std: tuple[float, ...] | None = None,
    num_classes: int | None = None,
) -> nn.Module:
    """The model in `weights` built as `arch` for `data`'s image shape; our registered
    architectures take normalisation inside (mean/std, default none), a factory's model is put
    behind it when mean/std are given."""
    c = data.channels
    spec = InputSpec(
        c,
        data.size,
        num_classes or data.num_classes,
        tuple(mean) if mean is not None else (0.0,) * c,
        tuple(std) if std is not None else (1.0,) * c,
    )
    return load_foreign(
        weights, arch, spec, options=options, key_map=key_map, normalize=mean is not None
    )


def state_of(model: nn.Module) -> dict[str, torch.Tensor]:
    """The weights to save: a factory model's own keys (without the normalisation we added)."""
    return (model.net if isinstance(model, Normalized) else model).state_dict()


def save_repair(
    model: nn.Module,
    report: RepairReport,
    out: str | Path,
    *,
    source: dict[str, Any],
    db: str | Path | bool | None = None,
    overwrite: bool = False,
) -> Path:
    """Write OUT/model.safetensors (the repaired weights, in the layout they were loaded in),
    OUT/result.json and a row of OUT/../results.db (or `db`; False: none)."""
    out = Path(out)
    created = datetime.now(timezone.utc)
    run_id = new_run_id(created)
    config = {
        "name": f"repair-{report.defense}",
        "seed": report.options.get("seed", 0),
        "dataset": {"name": str(source.get("data", "user"))},
        "model": {"name": str(source.get("arch", "user"))},
        "attack": {"name": "user trigger" if source.get("trigger") else "unknown"},
        "defense": report.options,
        "source": source,
    }
    after = report.after or {}
    record = {
        "run_id": run_id,
        "name": config["name"],
        "created": created.isoformat(timespec="seconds"),
        "config_hash": hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest(),
        "kind": "repair",
        "metrics": {**after, "before": report.before, **report.defense_report},
        "repair": report.to_dict(),
        "timings": {"total_s": report.seconds},
        "versions": versions(),
        "config": config,
    }
    with new_run_folder(out, overwrite) as tmp:
        save_tensors(tmp / "model.safetensors", state_of(model))
        write_json(tmp / RUN_MARKER, record)
    if db is not False:
        db_path = Path(db) if db not in (None, True) else out.parent / "results.db"
        ResultStore(db_path).add(store_row(record, out.resolve()))
    return out


def save_evaluation(
    metrics: dict[str, Any], out: str | Path, *, source: dict[str, Any], overwrite: bool = False
) -> Path:
    """Write OUT/result.json with the numbers of an evaluation and what they were measured on."""
    out = Path(out)
    with new_run_folder(out, overwrite) as tmp:
        write_json(tmp / RUN_MARKER, {"kind": "evaluate", "metrics": metrics, "source": source})
    return out


def plot_detection(d: Detection, path: Path) -> Path:
    """A bar per class of the detector's values, suspects in red, anomaly index above each."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(max(5, 0.5 * len(d.values) + 2), 3.4))
    colors = ["tab:red" if c in d.suspects else "tab:gray" for c in range(len(d.values))]
    bars = ax.bar(range(len(d.values)), d.values, color=colors)
    for bar, s in zip(bars, d.scores, strict=True):
        ax.annotate(
            f"{s:.1f}",
            (bar.get_x() + bar.get_width() / 2, bar.get_height()),
            ha="center",
            va="bottom",
            fontsize=7,
        )
    ax.set_xticks(range(len(d.values)))
    ax.set_xlabel("class (number above a bar: anomaly index)")
    ax.set_ylabel(d.value_name, fontsize=8)
    found = ", ".join(map(str, d.suspects)) or "none"
    ax.set_title(f"{d.detector}: suspected {found} (model score {d.score:.2f})", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)


def save_scan(result: ScanResult, out: str | Path, *, overwrite: bool = False) -> Path:
    """Write OUT/scan.json and OUT/<detector>.png (one folder, written whole)."""
    out = Path(out)
    record = {"kind": "scan", **result.to_dict()}
    with new_run_folder(out, overwrite) as tmp:
        write_json(tmp / "scan.json", record)
        for name, d in result.detections.items():
            plot_detection(d, tmp / f"{name}.png")
        write_json(tmp / RUN_MARKER, record)
    return out
