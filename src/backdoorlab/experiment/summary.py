"""A Markdown table of finished runs (ACC, ASR, RA, run time), with their trigger grids."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from backdoorlab.errors import ConfigError, DataError
from backdoorlab.experiment.artifacts import write_text
from backdoorlab.limits import read_json
from backdoorlab.paths import check_name, inside


def read_run(run_dir: str | Path) -> dict[str, Any]:
    """The result.json of a run folder (size-checked before parsing)."""
    path = Path(run_dir) / "result.json"
    if not path.is_file():
        raise ConfigError(f"{run_dir} is not a finished run folder (no result.json)")
    try:
        record = read_json(path)
    except DataError as exc:
        raise ConfigError(f"{run_dir} is not a finished run folder ({exc})") from None
    if not isinstance(record, dict) or not isinstance(record.get("config"), dict):
        raise ConfigError(f"{run_dir}: result.json is not a run record")
    return record


def pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


def attack_setting(record: dict[str, Any]) -> str:
    a, poison = record["config"]["attack"], record["poison"]
    if a["name"] == "none":
        return "-"
    # runs written before `per_batch` was recorded: nothing stored poisoned means per batch
    per_batch = poison.get("per_batch", poison["count"] == 0)
    of = "each batch" if per_batch else a["rate_of"].replace("_", " ")
    control = a.get("control", "training" if per_batch else "data")
    cross = f", {poison['cross']} cross" if poison.get("cross") else ""
    return f"{control} control, {a['label_mode']}-label, rate {a['rate']:g} of {of}{cross}"


def written_by(command: str | None) -> list[str]:
    """The Markdown lines that name the command a report was written by (none without one)."""
    if not command:
        return []
    return [f"Written by `{command}`; every number below comes from the run folders it reads.", ""]


def read_notes(notes: str | Path | None) -> str | None:
    """The text of a --notes file; a missing file is one ConfigError line."""
    if notes is None:
        return None
    try:
        return Path(notes).read_text().strip()
    except OSError as exc:
        raise ConfigError(f"--notes: cannot read {notes}: {exc.strerror}") from None


def summarize(
    run_dirs: list[str | Path],
    out: str | Path,
    *,
    baseline: str | Path | None = None,
    title: str = "Results",
    command: str | None = None,
    notes: str | Path | None = None,
    figures: bool = True,
) -> Path:
    """Write `out` (Markdown) with one row per run; copy each run's triggers.png beside it.

    `notes` is a Markdown file whose text goes under the table (the reading of the numbers).
    """
    if not run_dirs:
        raise ConfigError("summarize: no run folders given")
    runs = [(Path(d), read_run(d)) for d in run_dirs]
    for d, r in runs:  # names become file names beside the table: checked before any write
        check_name(str(r.get("name")), f"{d}/result.json name")
    base = read_run(baseline) if baseline is not None else None
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    note_text = read_notes(notes)
    lines = [f"# {title}", "", *written_by(command)]
    if base is not None:
        lines += [
            f"Baseline without attack (`{base['name']}`): ACC {pct(base['metrics']['acc'])}.",
            "",
        ]
    lines += [
        "| run | attack | setting | ACC | ACC - baseline | ASR | RA | poisoned "
        "| train s | total s |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    grids = []
    for run_dir, r in runs:
        m, cfg = r["metrics"], r["config"]
        delta = "-" if base is None else f"{m['acc'] - base['metrics']['acc']:+.2f}"
        lines.append(
            f"| {r['name']} | {cfg['attack']['name']} | {attack_setting(r)} | "
            f"{pct(m['acc'])} | {delta} | {pct(m['asr'])} | {pct(m['ra'])} | "
            f"{r['poison']['count']} | {r['timings']['train_s']:.0f} | "
            f"{r['timings']['total_s']:.0f} |"
        )
        grid = run_dir / "triggers.png"
        if figures and grid.is_file() and cfg["attack"]["name"] != "none":
            target = inside(out.parent, f"{r['name']}-triggers.png")
            shutil.copyfile(grid, target)
            grids.append((r["name"], target.name))
    lines.append("")
    lines.append(
        "Run times are wall-clock seconds of training and of the whole run (data, attack "
        "preparation, training, evaluation) on the machine that ran them."
    )
    if note_text:
        lines += ["", note_text]
    if grids:
        lines += ["", "## Trigger grids", ""]
        lines += [f"![{name}]({fname})" for name, fname in grids]
    return write_text(out, "\n".join(lines) + "\n")
