"""An attack x defense table of ACC/ASR (the layout of Gao Table VII / Mu Table II) from runs.

The "no defense" column of a post-training defense's row comes from the infected model the run
repaired (recorded in its result as metrics.infected), so it needs no separate run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from backdoorlab.errors import ConfigError
from backdoorlab.experiment.artifacts import write_text
from backdoorlab.experiment.summary import pct, read_notes, read_run, written_by


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
    """Write `out` (Markdown): one row per attack, ACC | ASR per defense, plus the Avg. Drop row
    (mean ACC and ASR drop of each defense against no defense over the attacks it ran on)."""
    if not run_dirs:
        raise ConfigError("defense grid: no run folders given")
    cells: dict[tuple[str, str], dict[str, Any]] = {}
    for d in run_dirs:
        r = read_run(d)
        attack, defense = _attack(r), _label(r)
        cells[(attack, defense)] = r["metrics"]
        infected = r["metrics"].get("infected")
        if infected:
            cells.setdefault((attack, "none"), infected["metrics"])
    attacks = sorted({a for a, _ in cells})
    defenses = sorted({d for _, d in cells}, key=lambda d: (d != "none", d))
    note_text = read_notes(notes)
    lines = [f"# {title}", "", *written_by(command)]
    lines += [
        "| attack | " + " | ".join(f"{d} ACC | {d} ASR" for d in defenses) + " |",
        "| --- | " + " | ".join("---: | ---:" for _ in defenses) + " |",
    ]
    for a in attacks:
        row = []
        for d in defenses:
            m = cells.get((a, d))
            row.append("- | -" if m is None else f"{pct(m['acc'])} | {pct(m.get('asr'))}")
        lines.append(f"| {a} | " + " | ".join(row) + " |")
    drops = []
    for d in defenses:
        pairs = [
            (cells[(a, "none")], cells[(a, d)])
            for a in attacks
            if (a, "none") in cells and (a, d) in cells and d != "none"
        ]
        if not pairs:
            drops.append("- | -")
            continue
        acc = sum(b["acc"] - m["acc"] for b, m in pairs) / len(pairs)
        asr = sum(b["asr"] - m["asr"] for b, m in pairs) / len(pairs)
        drops.append(f"{acc:.2f} | {asr:.2f}")
    lines += ["| **Avg. Drop** | " + " | ".join(drops) + " |", ""]
    if note_text:
        lines += [note_text, ""]
    for caption, path in figures:
        lines += [f"![{caption}]({path})", ""]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    return write_text(out, "\n".join(lines) + "\n")
