"""A stage cache: trained models stored by the hash of the config parts that determine them.

Every post-training defense of one attack configuration repairs the same infected model; the
cache trains it once. Entries are written to a temp folder and renamed, so a killed run never
leaves a half-written entry, and weights are safetensors (nothing is unpickled).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from backdoorlab.experiment.artifacts import load_tensors, save_tensors, staged_dir, write_json
from backdoorlab.experiment.config import ExperimentConfig

# the sections that determine the infected model (the defense and the run's name do not)
INFECTED_SECTIONS = ("seed", "dataset", "model", "attack", "train")


def stage_key(cfg: ExperimentConfig, sections: tuple[str, ...] = INFECTED_SECTIONS) -> str:
    """sha256 of the resolved config restricted to `sections`."""
    full = cfg.to_dict()
    blob = json.dumps({k: full[k] for k in sections}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


@dataclass
class CachedModel:
    key: str
    history: list[dict[str, Any]]
    path: Path


class StageCache:
    """Models under ROOT/<stage>/<key>/ (model.safetensors + meta.json)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def _dir(self, stage: str, key: str) -> Path:
        return self.root / stage / key

    def load(self, stage: str, key: str, model: nn.Module) -> CachedModel | None:
        """Load the weights of entry `key` into `model`; None where there is no entry."""
        d = self._dir(stage, key)
        if not (d / "meta.json").is_file():
            return None
        device = next(model.parameters()).device
        model.load_state_dict(load_tensors(d / "model.safetensors", device))
        meta = json.loads((d / "meta.json").read_text())
        return CachedModel(key, meta.get("history", []), d)

    def save(
        self, stage: str, key: str, model: nn.Module, history: list[dict[str, Any]]
    ) -> CachedModel:
        """Store `model` as entry `key` (replacing any entry of that key)."""
        d = self._dir(stage, key)
        with staged_dir(d) as tmp:
            save_tensors(tmp / "model.safetensors", model.state_dict())
            write_json(tmp / "meta.json", {"key": key, "stage": stage, "history": history})
        return CachedModel(key, history, d)

    def keys(self, stage: str) -> list[str]:
        """Keys of the finished entries of `stage`."""
        d = self.root / stage
        return sorted(p.parent.name for p in d.glob("*/meta.json")) if d.is_dir() else []
