"""The run record: one typed record for what every front door writes into result.json (a run,
a repair, an evaluation, a scan) and its results-database row."""

from __future__ import annotations

import platform
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from backdoorlab.errors import ConfigError, DataError
from backdoorlab.limits import read_json
from backdoorlab.paths import check_name
from backdoorlab.records.files import RUN_MARKER, check_out, staged_dir, write_json
from backdoorlab.records.metrics import Metrics
from backdoorlab.records.store import ResultStore
from backdoorlab.version import __version__

KINDS = ("run", "repair", "evaluate", "scan")
_FIELDS = ("kind", "run_id", "name", "created", "config_hash", "metrics", "timings", "versions",
           "config")  # fmt: skip


def cpu_name() -> str:
    """The CPU's model name (Linux's /proc/cpuinfo; else what `platform` knows): results on a
    CPU change with its family, even at one thread."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def versions() -> dict[str, str]:
    """Versions of backdoorlab, torch, numpy and Python, and the CPU the run used."""
    return {
        "backdoorlab": __version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "cpu": cpu_name(),
    }


@dataclass
class RunRecord:
    """What result.json holds. `kind` says which front door wrote it: `run` (a trained and
    possibly defended model, with its config), `repair` (a user's model repaired), `evaluate`
    and `scan` (numbers only, no config). `extra` keeps each kind's own sections (a run's
    poison and input_spec, a repair's report, an evaluation's source) at the top level of the
    file, as before."""

    kind: str
    metrics: Metrics
    run_id: str | None = None
    name: str | None = None
    created: str | None = None
    config: dict[str, Any] | None = None
    config_hash: str | None = None
    timings: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=versions)
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(
                f"a run record's kind is one of {', '.join(KINDS)}, not {self.kind!r}"
            )

    @property
    def poison(self) -> dict[str, Any] | None:
        """A run's poisoned set: count, cross, control, per_batch, share, file."""
        return self.extra.get("poison")

    @property
    def input_spec(self) -> dict[str, Any] | None:
        """A run's input: channels, size, num_classes, mean, std."""
        return self.extra.get("input_spec")

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of result.json (sections a kind lacks are left out)."""
        out = {k: getattr(self, k) for k in _FIELDS if getattr(self, k) is not None}
        return {**out, "metrics": self.metrics.to_dict(), **self.extra}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> RunRecord:
        """A record from result.json; files written before records had a kind are runs (with a
        config) or evaluations (without)."""
        kind = raw.get("kind") or ("run" if isinstance(raw.get("config"), dict) else "evaluate")
        known = {k: raw[k] for k in _FIELDS if k in raw and k != "kind"}
        extra = {k: v for k, v in raw.items() if k not in _FIELDS}
        known["metrics"] = Metrics.from_dict(raw.get("metrics") or {}, kind)
        known.setdefault("versions", {})
        return cls(kind=kind, extra=extra, **known)

    def to_row(self, out_dir: str | Path | None) -> dict[str, Any]:
        """The results-database row (runs and repairs: the kinds with a config)."""
        cfg = self.config
        if cfg is None:
            raise ConfigError(f"a {self.kind} record has no config, so no results-database row")
        m = self.metrics
        return {
            "run_id": self.run_id,
            "created": self.created,
            "name": cfg["name"],
            "config_hash": self.config_hash,
            "dataset": cfg["dataset"]["name"],
            "model": cfg["model"]["name"],
            "attack": cfg["attack"]["name"],
            "defense": cfg["defense"]["name"],
            "seed": cfg["seed"],
            "acc": m.acc,
            "asr": m.asr,
            "ra": m.ra,
            "status": "finished",
            "out_dir": None if out_dir is None else str(out_dir),
            "config_json": cfg,
            "poison_json": self.poison,
            "metrics_json": m.to_dict(),
            "timings_json": self.timings,
            "versions_json": self.versions,
        }

    def save(self, folder: Path) -> Path:
        """Write `folder`/result.json (inside a staged folder: the caller renames it)."""
        return write_json(folder / RUN_MARKER, self.to_dict())


# a file of a run folder beside result.json: its bytes, or a function writing it at a path
FileWriter = bytes | Callable[[Path], Any]


def write_run(
    out: str | Path,
    record: RunRecord,
    files: Mapping[str, FileWriter] | None = None,
    *,
    db: str | Path | None = None,
    overwrite: bool = True,
    row: Mapping[str, Any] | None = None,
) -> Path:
    """The one writer of run folders: OUT/result.json (`record`) and `files` in a temp folder
    renamed into place whole, then with `db` the record's results-database row (`row`: more
    columns, a sweep's cell and axes). An `out` that holds anything but an earlier run is refused;
    an earlier run only with `overwrite`."""
    out = Path(out)
    check_out(out, overwrite)
    with staged_dir(out, marker=RUN_MARKER) as tmp:
        for name, content in (files or {}).items():
            path = tmp / check_name(name, "run file")
            if isinstance(content, bytes):
                path.write_bytes(content)
            else:
                content(path)
        record.save(tmp)
    if db is not None:
        ResultStore(db).add({**record.to_row(out.resolve()), **(row or {})})
    return out


def read_record(run_dir: str | Path) -> RunRecord:
    """The record in a folder's result.json, of any kind (size-checked before parsing)."""
    path = Path(run_dir) / RUN_MARKER
    if not path.is_file():
        raise ConfigError(f"{run_dir} is not a finished run folder (no result.json)")
    try:
        raw = read_json(path)
    except DataError as exc:
        raise ConfigError(f"{run_dir} is not a finished run folder ({exc})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{run_dir}: result.json is not a run record")
    return RunRecord.from_dict(raw)


def read_run(run_dir: str | Path) -> RunRecord:
    """The record of a folder whose result.json has a config (a run or a repair)."""
    record = read_record(run_dir)
    if record.config is None:
        raise ConfigError(f"{run_dir}: result.json is not a run record (a {record.kind})")
    return record
