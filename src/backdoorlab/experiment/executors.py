"""Where sweep cells run: in this process (local) or as Ray tasks (ray). Neither writes results:
each cell's run folder comes back as bytes and the sweep driver is the only writer."""

from __future__ import annotations

import os
import tempfile
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backdoorlab.errors import BackdoorlabError, ConfigError


@dataclass
class Task:
    """One cell to run: its resolved config, the stage-cache folder and its resources."""

    config: dict[str, Any]
    cache: str
    cpus: int
    gpus: float


@dataclass
class Outcome:
    """What came back for task `index`: the run folder's files, why it failed, or that it was
    skipped (another start of the sweep had finished it meanwhile)."""

    index: int
    files: dict[str, bytes] | None = None
    error: str | None = None
    skipped: bool = False


Pending = Callable[[int], bool]  # is task i still to be run? (asked just before starting it)


def run_cell(task: Task, cwd: str | None = None, progress: bool = False) -> dict[str, bytes]:
    """Run one cell into a private temp folder and return that run folder's files."""
    from backdoorlab.experiment.runner import run

    if cwd and Path(cwd).is_dir():
        os.chdir(cwd)  # relative dataset roots resolve as on the driver (same machine / shared FS)
    # the same thread count everywhere -> the same numbers (performance is not part of the key)
    config = dict(task.config)
    config["performance"] = {**(config.get("performance") or {}), "threads": task.cpus}
    with tempfile.TemporaryDirectory(prefix="backdoorlab-cell-") as tmp:
        out = Path(tmp) / "run"
        run(config, out=out, add_row=False, cache=task.cache, progress=progress)
        return {p.name: p.read_bytes() for p in sorted(out.iterdir()) if p.is_file()}


def _reason(exc: BaseException) -> str:
    if isinstance(exc, BackdoorlabError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}".strip()


class LocalExecutor:
    """Cells one after another in this process, each with its own progress bar."""

    def __init__(self, address: str | None = None, retries: int = 0) -> None:
        if address is not None:
            raise ConfigError("`address`: applies to the ray executor only")

    def map(
        self, tasks: list[Task], progress: bool = True, pending: Pending | None = None
    ) -> Iterator[Outcome]:
        for i, task in enumerate(tasks):
            if pending is not None and not pending(i):
                yield Outcome(i, skipped=True)
                continue
            try:
                yield Outcome(i, files=run_cell(task, progress=progress))
            except Exception as exc:  # a failed cell is reported; the sweep goes on
                yield Outcome(i, error=_reason(exc))


def _ray_cell(task: Task, cwd: str | None) -> dict[str, bytes]:
    try:
        return run_cell(task, cwd)
    except BackdoorlabError as exc:  # keep the one-line reason across the process boundary
        raise RuntimeError(str(exc)) from None


class RayExecutor:
    """Each cell a Ray task asking for the cell's CPUs/GPUs, retried when its worker dies.

    `address` is an existing cluster ('auto', or host:port of `ray start --head`); without it
    Ray starts a private local instance. `body` is what each task runs (default: the cell).
    """

    def __init__(
        self,
        address: str | None = None,
        retries: int = 3,
        body: Callable[[Task, str | None], dict[str, bytes]] | None = None,
    ) -> None:
        try:
            import ray
        except ImportError:
            raise ConfigError(
                "the ray executor needs Ray: pip install 'backdoorlab[ray]'"
            ) from None
        self.ray = ray
        self.address = address
        self.retries = retries
        self.body = body or _ray_cell

    def map(
        self, tasks: list[Task], progress: bool = True, pending: Pending | None = None
    ) -> Iterator[Outcome]:
        ray = self.ray
        if not ray.is_initialized():
            ray.init(address=self.address, include_dashboard=False, log_to_driver=False)
        cwd = os.getcwd()
        running = {}
        for i, task in enumerate(tasks):
            if pending is not None and not pending(i):
                yield Outcome(i, skipped=True)
                continue
            remote = ray.remote(num_cpus=task.cpus, num_gpus=task.gpus, max_retries=self.retries)
            running[remote(self.body).remote(task, cwd)] = i
        while running:
            done, _ = ray.wait(list(running), num_returns=1)
            i = running.pop(done[0])
            try:
                yield Outcome(i, files=ray.get(done[0]))
            except ray.exceptions.RayTaskError as exc:
                cause = exc.cause if getattr(exc, "cause", None) is not None else exc
                yield Outcome(i, error=_reason(cause))
            except ray.exceptions.RayError as exc:  # the worker died more than `retries` times
                yield Outcome(i, error=f"{type(exc).__name__}: " + traceback.format_exc(limit=0))


EXECUTORS: dict[str, type[LocalExecutor] | type[RayExecutor]] = {
    "local": LocalExecutor,
    "ray": RayExecutor,
}
