"""Reproduction sweeps of the papers' tables: configs/paper/<paper>/<table>.yaml at a profile."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import backdoorlab
from backdoorlab.errors import ConfigError
from backdoorlab.experiment.report import Section, report
from backdoorlab.experiment.sweep import SweepResult, sweep


def paper_roots() -> list[Path]:
    """Where reproduction sweeps are looked up: ./configs/paper, then the source checkout's."""
    roots = [Path.cwd() / "configs" / "paper"]
    checkout = Path(backdoorlab.__file__).resolve().parents[2] / "configs" / "paper"
    if checkout not in roots:
        roots.append(checkout)
    return [r for r in roots if r.is_dir()]


def paper_sweeps() -> dict[str, Path]:
    """Every reproduction sweep by name (gao2023-table7 -> .../gao2023/table7.yaml)."""
    found: dict[str, Path] = {}
    for root in reversed(paper_roots()):  # the working directory's win
        for path in sorted(root.glob("*/*.yaml")):
            found[f"{path.parent.name}-{path.stem}"] = path
    return dict(sorted(found.items()))


def reproduce(
    name: str,
    profile: str,
    *,
    out: str | Path | None = None,
    report_to: str | Path | None = None,
    fmt: str = "md",
    executor: str = "local",
    address: str | None = None,
    cpus: int | None = None,
    reverse: bool = False,
    progress: bool = True,
    say: Callable[[str], None] = print,
    command: str | None = None,
    notes: str | Path | None = None,
) -> tuple[SweepResult, Path, list[Section]]:
    """Run reproduction sweep `name` at `profile` (resuming) and write its report.

    Results go to `out` (default runs/reproduce/<name>-<profile>); the report to `report_to`
    (a path without suffix; default OUT/report/<name>).
    """
    sweeps = paper_sweeps()
    if name not in sweeps:
        raise ConfigError(f"no reproduction sweep {name!r} (known: {', '.join(sweeps) or 'none'})")
    out = Path(out) if out is not None else Path("runs") / "reproduce" / f"{name}-{profile}"
    result = sweep(
        sweeps[name],
        out,
        profile=profile,
        executor=executor,
        address=address,
        cpus=cpus,
        reverse=reverse,
        progress=progress,
        say=say,
    )
    path, sections = report(
        result.db, report_to, sweep=result.spec.name, fmt=fmt, command=command, notes=notes
    )
    return result, path, sections
