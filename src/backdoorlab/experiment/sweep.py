"""Run a sweep: every cell not yet in OUT/results.db, on an executor, with one writer of results.

A cell is recorded once its run folder (OUT/cells/<slug>, written to a temp name and renamed) and
its database row (one transaction, unique by the cell's config hash) are both in place, so a sweep
killed at any moment and started again runs exactly the cells that are missing.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backdoorlab.errors import ConfigError
from backdoorlab.experiment.artifacts import staged_dir
from backdoorlab.experiment.executors import EXECUTORS, Task
from backdoorlab.experiment.runner import store_row
from backdoorlab.experiment.store import ResultStore
from backdoorlab.experiment.summary import pct
from backdoorlab.experiment.sweep_spec import Cell, SweepSpec, expand, load_sweep


@dataclass
class SweepResult:
    """A sweep after a start: its cells, how many ran now, which failed, where results are."""

    spec: SweepSpec
    cells: list[Cell]
    db: Path
    ran: int = 0
    skipped: int = 0
    failures: dict[str, str] = field(default_factory=dict)


def sweep(
    source: str | Path | dict[str, Any] | SweepSpec,
    out: str | Path,
    *,
    profile: str | None = None,
    executor: str = "local",
    address: str | None = None,
    cache: str | Path | None = None,
    retries: int = 3,
    cpus: int | None = None,
    reverse: bool = False,
    progress: bool = True,
    say: Callable[[str], None] = print,
) -> SweepResult:
    """Run the cells of `source` that OUT/results.db does not hold yet; returns the tally.

    `cpus` replaces the sweep's resources.cpus (threads per cell) on this start. A cell that
    another start finished meanwhile is skipped, so a second start with `reverse` (last cell
    first) beside a first one shares the work; they may meet on one cell.
    """
    spec = source if isinstance(source, SweepSpec) else load_sweep(source, profile)
    if cpus is not None:
        if cpus < 1:
            raise ConfigError(f"--cpus: must be >= 1 (got {cpus})")
        spec = spec.model_copy(
            update={"resources": spec.resources.model_copy(update={"cpus": cpus})}
        )
    if executor not in EXECUTORS:
        raise ConfigError(f"--executor: unknown {executor!r} (known: {', '.join(EXECUTORS)})")
    cells = expand(spec)
    out = Path(out)
    # a start killed while writing a cell folder leaves its temp folder: this driver owns cells/
    for stale in (out / "cells").glob(".*.tmp") if (out / "cells").is_dir() else []:
        shutil.rmtree(stale, ignore_errors=True)
    store = ResultStore(out / "results.db")
    store.put_sweep(spec.name, spec.model_dump(mode="json"))
    done = store.cells()
    todo = [c for c in cells if c.key not in done]
    if reverse:
        todo.reverse()
    result = SweepResult(spec, cells, store.path, skipped=len(cells) - len(todo))
    say(
        f"sweep {spec.name}{f' ({spec.profile})' if spec.profile else ''}: {len(cells)} cells, "
        f"{result.skipped} already finished, {len(todo)} to run on the {executor} executor "
        f"({spec.resources.cpus} CPU threads per cell)"
    )
    if not todo:
        return result
    runner = EXECUTORS[executor](address=address, retries=retries)
    cache_dir = str(Path(cache if cache is not None else out / "cache").resolve())
    r = spec.resources
    tasks = [Task(c.config.to_dict(), cache_dir, r.cpus, r.gpus) for c in todo]
    t0 = time.perf_counter()
    outcomes = runner.map(
        tasks, progress=progress, pending=lambda i: todo[i].key not in store.cells()
    )
    before = result.skipped
    for n, outcome in enumerate(outcomes, start=1):
        cell = todo[outcome.index]
        head = f"[{before + n}/{len(cells)}] {cell.label}"
        if outcome.skipped:
            result.skipped += 1
            say(f"{head}: finished by another start meanwhile, skipped")
            continue
        if outcome.error is not None:
            result.failures[cell.label] = outcome.error
            say(f"{head}: FAILED - {outcome.error}")
            continue
        record = _commit(store, spec, cell, outcome.files, out / "cells" / cell.slug)
        result.ran += 1
        m = record["metrics"]
        say(
            f"{head}: ACC {pct(m.get('acc'))} ASR {pct(m.get('asr'))} "
            f"({record['timings']['total_s']:.0f} s; sweep {time.perf_counter() - t0:.0f} s)"
        )
    return result


def _commit(
    store: ResultStore, spec: SweepSpec, cell: Cell, files: dict[str, bytes], folder: Path
) -> dict[str, Any]:
    """Write the cell's run folder (renamed into place), then its row (one transaction)."""
    with staged_dir(folder) as tmp:
        for name, blob in files.items():
            (tmp / name).write_bytes(blob)
    record = json.loads(files["result.json"])
    row = store_row(record, folder.resolve())
    row.update(sweep=spec.name, cell=cell.key, axes_json=cell.axes)
    store.add(row)
    return record
