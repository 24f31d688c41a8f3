"""A Markdown table of finished runs (ACC, ASR, RA, run time), with their trigger grids."""

from __future__ import annotations

import shutil
from pathlib import Path

from backdoorlab.errors import ConfigError
from backdoorlab.experiment.artifacts import read_run, write_text
from backdoorlab.experiment.report import attack_setting, pct, read_notes, written_by
from backdoorlab.paths import check_name, inside


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
