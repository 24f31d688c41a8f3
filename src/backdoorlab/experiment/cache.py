"""A stage cache: what a stage produced, stored by the hash of the config parts that determine it.

Three stages are cached: `poisoned` (the fitted attack's trigger and the poisoned training set:
seed, dataset, attack), `infected` (the model trained on it: + model, train) and `auxiliary` (a
model an attack trains for itself, by its own config and training data: LC's surrogate serves
every LC cell of a sweep whatever its eps or rate). Every cell of a
sweep that shares those sections reuses them, e.g. each post-training defense of one attack repairs
the same infected model. Each entry also keeps the global RNG state the stage left behind, so a
run that takes a stage from the cache continues exactly as the run that computed it. Entries are
written to a temp folder and renamed (a killed run never leaves a half-written entry) and hold
safetensors and JSON only (nothing is unpickled).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from backdoorlab.attacks.base import Attack
from backdoorlab.defenses.base import DEFENSES
from backdoorlab.errors import DataError
from backdoorlab.experiment.config import ExperimentConfig
from backdoorlab.fingerprint import fingerprint
from backdoorlab.limits import read_json
from backdoorlab.records.files import load_tensors, save_tensors, staged_dir, write_json

# the sections that determine each stage (the defense and the run's name never do)
POISONED_SECTIONS = ("seed", "dataset", "attack")
INFECTED_SECTIONS = ("seed", "dataset", "model", "attack", "train")
_RNG = "rng.cpu"
META = "meta.json"
INFECTED_FORMAT = 2  # 2: the entry holds the attack's state after training too


def default_cache(cfg: ExperimentConfig, out: Path) -> Path | None:
    """The cache a saved run uses unless told otherwise: beside its folder when another run may
    share its infected model (a repair, or detectors that score it); none otherwise."""
    defense = DEFENSES.get(cfg.defense.name)
    shared = defense.post_training and (not defense.identity or bool(cfg.detect))
    return out.parent / "cache" if shared else None


def stage_key(cfg: ExperimentConfig, sections: tuple[str, ...] = INFECTED_SECTIONS) -> str:
    """sha256 of the resolved config restricted to `sections`."""
    full = cfg.to_dict()
    return fingerprint({k: full[k] for k in sections}, compact=True)


def rng_state() -> dict[str, torch.Tensor]:
    """The global torch RNG state (CPU and every CUDA device) as tensors."""
    state = {_RNG: torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            state[f"rng.cuda{i}"] = s
    return state


def set_rng_state(tensors: dict[str, torch.Tensor]) -> None:
    """Restore what rng_state() recorded (entries without one are left alone)."""
    if _RNG in tensors:
        torch.set_rng_state(tensors[_RNG].cpu())
    cuda = [tensors[k].cpu() for k in sorted(tensors) if k.startswith("rng.cuda")]
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


@dataclass
class CacheEntry:
    """One cached stage: its tensors (RNG state removed) and its JSON metadata."""

    key: str
    tensors: dict[str, torch.Tensor]
    meta: dict[str, Any]
    path: Path


class StageCache:
    """Entries under ROOT/<stage>/<key>/ (tensors.safetensors + meta.json)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def _dir(self, stage: str, key: str) -> Path:
        return self.root / stage / key

    def get(self, stage: str, key: str, device: str | torch.device = "cpu") -> CacheEntry | None:
        """CacheEntry `key` of `stage` with the RNG state it recorded restored; None on a miss."""
        d = self._dir(stage, key)
        if not (d / META).is_file() or not (d / "tensors.safetensors").is_file():
            return None  # absent, or written by an older layout
        try:  # a truncated or corrupt entry is a miss: the stage runs again and rewrites it
            tensors = load_tensors(d / "tensors.safetensors", device)
            meta = read_json(d / META)
        except DataError:
            return None
        set_rng_state(tensors)
        tensors = {k: v for k, v in tensors.items() if not k.startswith("rng.")}
        return CacheEntry(key, tensors, meta, d)

    def put(
        self, stage: str, key: str, tensors: dict[str, torch.Tensor], meta: dict[str, Any]
    ) -> Path:
        """Store `tensors` (+ the current RNG state) and `meta` as entry `key`, replacing any."""
        d = self._dir(stage, key)
        with staged_dir(d, marker=META) as tmp:
            save_tensors(tmp / "tensors.safetensors", {**tensors, **rng_state()})
            write_json(tmp / META, {"key": key, "stage": stage, **meta})
        return d

    def load_model(self, key: str, model: nn.Module, attack: Attack) -> list[dict[str, Any]] | None:
        """Load infected model `key` into `model` and the attack's state as training left it
        (IAD's generator trains beside the victim); its training history, or None on a miss."""
        entry = self.get("infected", key, next(model.parameters()).device)
        if entry is None or entry.meta.get("format") != INFECTED_FORMAT:
            return None  # absent, or written before entries kept the attack's state
        prefix = "attack."
        model.load_state_dict({k: v for k, v in entry.tensors.items() if not k.startswith(prefix)})
        attack.load_state(
            {k[len(prefix) :]: v for k, v in entry.tensors.items() if k.startswith(prefix)}
        )
        return entry.meta.get("history", [])

    def save_model(
        self, key: str, model: nn.Module, attack: Attack, history: list[dict[str, Any]]
    ) -> Path:
        """Store trained `model` and the attack's state after training as infected entry `key`."""
        tensors = {**model.state_dict(), **{f"attack.{k}": v for k, v in attack.state().items()}}
        meta = {"history": history, "format": INFECTED_FORMAT}
        return self.put("infected", key, tensors, meta)

    def trained(
        self,
        key: str,
        model: nn.Module,
        attack: Attack,
        train: Callable[[], list[dict[str, Any]]],
    ) -> tuple[list[dict[str, Any]], bool]:
        """Infected model `key` loaded into `model` (and the attack's state) when stored; else
        `train()` trains it and it is stored. Its history, and whether it came from here."""
        history = self.load_model(key, model, attack)
        if history is not None:
            return history, True
        history = train()
        self.save_model(key, model, attack, history)
        return history, False

    def get_state(self, key: str) -> dict[str, torch.Tensor] | None:
        """An auxiliary model's weights (attacks.auxiliary.ModelStore), None on a miss."""
        entry = self.get("auxiliary", key)
        return None if entry is None else entry.tensors

    def put_state(self, key: str, state: dict[str, torch.Tensor]) -> None:
        """Store an auxiliary model's weights as entry `key` of the `auxiliary` stage."""
        self.put("auxiliary", key, state, {})

    def keys(self, stage: str) -> list[str]:
        """Keys of the finished entries of `stage`."""
        d = self.root / stage
        return sorted(p.parent.name for p in d.glob(f"*/{META}")) if d.is_dir() else []
