"""A run record: what result.json holds and the results-database row made from it."""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

import numpy as np
import torch

from backdoorlab.version import __version__


def versions() -> dict[str, str]:
    """Versions of backdoorlab, torch, numpy and Python."""
    return {
        "backdoorlab": __version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def store_row(record: dict[str, Any], out_dir: str | Path | None) -> dict[str, Any]:
    """The results-database row of a run from its result.json record."""
    cfg = record["config"]
    m = record["metrics"]
    return {
        "run_id": record["run_id"],
        "created": record["created"],
        "name": cfg["name"],
        "config_hash": record["config_hash"],
        "dataset": cfg["dataset"]["name"],
        "model": cfg["model"]["name"],
        "attack": cfg["attack"]["name"],
        "defense": cfg["defense"]["name"],
        "seed": cfg["seed"],
        "acc": m.get("acc"),
        "asr": m.get("asr"),
        "ra": m.get("ra"),
        "status": "finished",
        "out_dir": None if out_dir is None else str(out_dir),
        "config_json": cfg,
        "metrics_json": m,
        "timings_json": record["timings"],
        "versions_json": record["versions"],
    }
