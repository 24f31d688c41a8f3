"""An attack x defense table of ACC/ASR from run folders (the layout of Mu Table II): the "no
defense" column of a post-training defense's row comes from the infected model the run repaired
(metrics.infected), so it needs no extra run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from backdoorlab.errors import ConfigError
from backdoorlab.experiment.artifacts import read_run, write_text
from backdoorlab.experiment.report import Grid, read_notes, written_by


def _label(r: dict[str, Any]) -> str:
    d = r["config"]["defense"]
    if d["name"] == "aft" and d.get("data") == "poisoned":
        return "aft (no clean data)"
    return d["name"]


def _attack(r: dict[str, Any]) -> str:
    a = r["config"]["attack"]
    return f"{a['name']} ({a['rate'] * 100:g}%)" if a["name"] != "none" else "none"


def defense_grid(
    run_dirs: list[str | Path],
    out: str | Path,
    *,
    title: str = "Defenses against attacks",
    command: str | None = None,
    notes: str | Path | None = None,
    figures: list[tuple[str, str]] = (),
) -> Path:
    """Write `out` (Markdown): one row per attack, ACC | ASR per defense, plus the Avg. Drop row."""
    if not run_dirs:
        raise ConfigError("defense grid: no run folders given")
    cells: dict[tuple[str, str], dict[str, Any]] = {}
    for d in run_dirs:
        r = read_run(d)
        attack, defense = _attack(r), _label(r)
        cells[(attack, defense)] = r["metrics"]
        infected = r["metrics"].get("infected")
        if infected and "metrics" in infected:
            cells.setdefault((attack, "none"), infected["metrics"])
    attacks = sorted({a for a, _ in cells})
    defenses = sorted({d for _, d in cells}, key=lambda d: (d != "none", d))
    grid = Grid(attacks, defenses, cells, baseline="none")
    note_text = read_notes(notes)
    lines = [f"# {title}", "", *written_by(command), *grid.markdown("attack"), ""]
    if note_text:
        lines += [note_text, ""]
    for caption, path in figures:
        lines += [f"![{caption}]({path})", ""]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    return write_text(out, "\n".join(lines) + "\n")
