"""Run a sweep: every cell not yet in OUT/results.db, on an executor, with one writer of results.

A cell is recorded once its run folder (OUT/cells/<slug>, written to a temp name and renamed) and
its database row (one transaction, unique by the cell's config hash) are both in place, so a sweep
killed at any moment and started again runs exactly the cells that are missing.

Several starts may share one sweep folder: a start holds a cell's file lock (OUT/cells/.<slug>.lock,
released by the OS when the process dies) from the moment it takes the cell until its row is
written, skips cells another live start holds, writes a folder only while no row exists for the
cell, and removes only the temp folders whose owner is gone.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from backdoorlab.errors import BackdoorlabError, ConfigError
from backdoorlab.experiment.executors import EXECUTORS, Task
from backdoorlab.experiment.sweep_spec import Cell, SweepSpec, expand, load_sweep
from backdoorlab.metrics.core import pct
from backdoorlab.records.files import RUN_MARKER
from backdoorlab.records.record import RunRecord, write_run
from backdoorlab.records.store import ResultStore


def print_now(line: str) -> None:
    """Print one line at once: a sweep's log file shows each cell as it ends, not when the
    buffer fills."""
    print(line, flush=True)


@dataclass
class SweepResult:
    """A sweep after a start: its cells, how many ran now, which failed, where results are."""

    spec: SweepSpec
    cells: list[Cell]
    db: Path
    ran: int = 0
    skipped: int = 0
    failures: dict[str, str] = field(default_factory=dict)
    stopped: str | None = None  # why the driver stopped early (e.g. the disk is full)


class CellLocks:
    """One file lock per cell under the cells folder, held by the live start working on it."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.held: dict[str, FileLock] = {}

    def acquire(self, slug: str) -> bool:
        """Take the lock of cell `slug` if no live process holds it."""
        lock = FileLock(self.folder / f".{slug}.lock", timeout=0)
        try:
            lock.acquire()
        except Timeout:
            return False
        self.held[slug] = lock
        return True

    def release(self, slug: str) -> None:
        lock = self.held.pop(slug, None)
        if lock is not None:
            lock.release()

    def release_all(self) -> None:
        for slug in list(self.held):
            self.release(slug)

    def clean_stale(self) -> None:
        """Remove the temp folders (.<slug>.<x>.tmp / .old) whose cell no live start holds."""
        for stale in [*self.folder.glob(".*.tmp"), *self.folder.glob(".*.old")]:
            slug = stale.name[1:].rsplit(".", 2)[0]
            if stale.is_dir() and self.acquire(slug):
                try:
                    shutil.rmtree(stale, ignore_errors=True)
                finally:
                    self.release(slug)


def plan(source: str | Path | dict[str, Any] | SweepSpec, profile: str | None = None) -> list[Cell]:
    """Every cell a sweep would run, its config resolved and validated; trains and writes
    nothing (what `backdoorlab sweep --dry-run` prints)."""
    spec = source if isinstance(source, SweepSpec) else load_sweep(source, profile)
    return expand(spec)


def sliced(cells: list[Cell], only: Mapping[str, Sequence[str]] | None) -> list[Cell]:
    """The cells whose label on each axis of `only` is one of those given (all without it);
    an axis the sweep lacks, or a label its axis lacks, is an error (a typo would run nothing)."""
    for axis, labels in (only or {}).items():
        known = {c.axes[axis] for c in cells if axis in c.axes}
        if not known:
            raise ConfigError(f"`only`: the sweep has no axis {axis!r}")
        unknown = sorted(set(labels) - known)
        if unknown:
            raise ConfigError(
                f"`only`: axis {axis!r} has no label {', '.join(unknown)} "
                f"(labels: {', '.join(sorted(known))})"
            )
    return [c for c in cells if all(c.axes.get(a) in ls for a, ls in (only or {}).items())]


def sweep(
    source: str | Path | dict[str, Any] | SweepSpec,
    out: str | Path | None = None,
    *,
    profile: str | None = None,
    executor: str = "local",
    address: str | None = None,
    cache: str | Path | None = None,
    retries: int = 3,
    cpus: int | None = None,
    reverse: bool = False,
    merge: Sequence[str | Path] = (),
    only: Mapping[str, Sequence[str]] | None = None,
    progress: bool = True,
    say: Callable[[str], None] = print_now,
) -> SweepResult:
    """Run the cells of `source` (a sweep file, its name, a mapping or a spec) that
    OUT/results.db does not hold yet; returns the tally. OUT defaults to runs/<name>[-<profile>].

    `cpus` replaces the sweep's resources.cpus (threads per cell) on this start. A cell that
    another start finished meanwhile is skipped, so a second start with `reverse` (last cell
    first) beside a first one shares the work; they may meet on one cell. `merge` names the
    results databases of other starts of this sweep (another OUT): their rows of the current
    cells are copied in first, so this folder holds, and reports, the whole sweep.
    """
    spec = source if isinstance(source, SweepSpec) else load_sweep(source, profile)
    if cpus is not None:
        if cpus < 1:
            raise ConfigError(f"`cpus`: must be >= 1 (got {cpus})")
        spec = spec.model_copy(
            update={"resources": spec.resources.model_copy(update={"cpus": cpus})}
        )
    if executor not in EXECUTORS:
        raise ConfigError(f"`executor` {executor!r}: unknown (known: {', '.join(EXECUTORS)})")
    cells = expand(spec)
    if out is None:
        out = Path("runs") / (spec.name + (f"-{spec.profile}" if spec.profile else ""))
    out = Path(out)
    (out / "cells").mkdir(parents=True, exist_ok=True)
    locks = CellLocks(out / "cells")
    locks.clean_stale()  # what a killed start left half-written
    store = ResultStore(out / "results.db")
    # the current cells' keys: rows an earlier version of the file left are not reported
    store.put_sweep(spec.name, {**spec.model_dump(mode="json"), "cells": [c.key for c in cells]})
    for other in merge:
        copied = store.absorb(other, spec.name, {c.key for c in cells})
        say(f"merged {copied} finished cells of {spec.name} from {other}")
    done = store.cells()
    finished = sum(c.key in done for c in cells)
    todo = [c for c in sliced(cells, only) if c.key not in done]
    if reverse:
        todo.reverse()
    result = SweepResult(spec, cells, store.path, skipped=finished)
    left = len(cells) - finished - len(todo)  # missing cells outside the `only` slice
    say(
        f"sweep {spec.name}{f' ({spec.profile})' if spec.profile else ''}: {len(cells)} cells, "
        f"{finished} already finished, {len(todo)} to run"
        + (f" ({left} more outside the slice)" if left else "")
        + f" on the {executor} executor ({spec.resources.cpus} CPU threads per cell)"
    )
    if not todo:
        return result
    runner = EXECUTORS[executor](address=address, retries=retries)
    cache_dir = str(Path(cache if cache is not None else out / "cache").resolve())
    r = spec.resources
    tasks = [Task(c.config.to_dict(), cache_dir, r.cpus, r.gpus) for c in todo]
    busy: set[int] = set()

    def pending(i: int) -> bool:
        """Still to run here: not finished, and this start now holds its lock."""
        if todo[i].key in store.cells():
            return False
        if not locks.acquire(todo[i].slug):
            busy.add(i)
            return False
        if todo[i].key in store.cells():  # finished between the two looks
            locks.release(todo[i].slug)
            return False
        return True

    t0 = time.perf_counter()
    outcomes = runner.map(tasks, progress=progress, pending=pending)
    before = result.skipped
    try:
        for n, outcome in enumerate(outcomes, start=1):
            cell = todo[outcome.index]
            head = f"[{before + n}/{len(cells)}] {cell.label}"
            record = None
            try:  # the cell's lock is held until here (never for a skipped cell)
                if outcome.error is not None:
                    result.failures[cell.label] = outcome.error
                    say(f"{head}: FAILED - {outcome.error}")
                    continue
                if not outcome.skipped:  # None: another start recorded it first
                    folder = out / "cells" / cell.slug
                    record = _commit(store, spec, cell, outcome.files, folder)
            except BackdoorlabError as exc:  # e.g. a folder in the way that is not ours
                result.failures[cell.label] = str(exc)
                say(f"{head}: FAILED - {exc}")
                continue
            except (OSError, sqlite3.Error) as exc:
                result.failures[cell.label] = result.stopped = f"cannot record the cell: {exc}"
                say(f"{head}: FAILED - {result.stopped}; stopping the sweep")
                break
            finally:
                locks.release(cell.slug)
            if record is None:
                result.skipped += 1
                if outcome.index in busy:
                    say(f"{head}: another start is running it, skipped")
                else:
                    say(f"{head}: finished by another start meanwhile, skipped")
                continue
            result.ran += 1
            m = record.metrics
            say(
                f"{head}: ACC {pct(m.acc)} ASR {pct(m.asr)} "
                f"({record.timings['total_s']:.0f} s; sweep {time.perf_counter() - t0:.0f} s)"
            )
    finally:
        close = getattr(outcomes, "close", None)
        if close is not None:
            close()
        locks.release_all()
    return result


def _commit(
    store: ResultStore, spec: SweepSpec, cell: Cell, files: dict[str, bytes], folder: Path
) -> RunRecord | None:
    """Write the cell's run folder (renamed into place), then its row (one transaction); None,
    writing nothing, when another start recorded the cell first. The caller holds its lock."""
    if cell.key in store.cells():
        return None
    record = RunRecord.from_dict(json.loads(files[RUN_MARKER]))
    others = {name: blob for name, blob in files.items() if name != RUN_MARKER}
    row = {"sweep": spec.name, "cell": cell.key, "axes_json": cell.axes}
    write_run(folder, record, others, db=store.path, row=row)
    return record
