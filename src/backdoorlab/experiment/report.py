"""Reports of a sweep's results database: the papers' tables and figures, as Markdown + CSV + PNG
or as one self-contained HTML page.

The layouts come from the `reports` section of the sweep file (stored in the database by the
sweep), each entry one of REPORT_KINDS:

    table7: {kind: grid, rows: attack, columns: defense, baseline: none, paper: {...}}
    fig2:   {kind: lines, x: defense.eps, panels: defense.threat, lines: attack}
    fig3:   {kind: curve, lines: attack, where: {defense: aft}}
    zoo:    {kind: detect, group: attack.name, planted: 50}

`rows`, `columns`, `x`, `panels` and `lines` name an axis of the sweep or a dotted config key;
`where` keeps the cells with those labels (or config values).
"""

from __future__ import annotations

import base64
import csv
import fnmatch
import html
import io
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from backdoorlab.detectors.zoo import (
    Member,
    detection_rows,
    per_model_csv,
    roc_figure,
    split,
)
from backdoorlab.errors import ConfigError
from backdoorlab.experiment.artifacts import read_run, write_text
from backdoorlab.experiment.store import ResultStore
from backdoorlab.experiment.sweep_spec import axis_values, excluded_by
from backdoorlab.metrics.core import der
from backdoorlab.paths import check_name, inside, slug
from backdoorlab.plotting import pyplot, save_figure


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


DROP = "Avg. Drop"
DER_ROW = "Avg. DER"


@dataclass
class Grid:
    """ACC/ASR per (row, column) label, with the baseline column and published numbers."""

    rows: list[str]
    columns: list[str]
    cells: dict[tuple[str, str], dict[str, Any]]
    baseline: str | None = None
    paper: dict[str, dict[str, list[float]]] = field(default_factory=dict)

    def _paper(self, r: str, c: str) -> list[float] | None:
        return self.paper.get(r, {}).get(c)

    def _drop(self, c: str, numbers) -> tuple[float, float] | None:
        pairs = [(numbers(r, self.baseline), numbers(r, c)) for r in self.rows]
        pairs = [(b, m) for b, m in pairs if b is not None and m is not None]
        if not pairs or c == self.baseline:
            return None
        n = len(pairs)
        return sum(b[0] - m[0] for b, m in pairs) / n, sum(b[1] - m[1] for b, m in pairs) / n

    def _ours(self, r: str, c: str) -> tuple[float, float] | None:
        m = self.cells.get((r, c))
        return None if m is None or m.get("asr") is None else (m["acc"], m["asr"])

    def drop(self, c: str) -> tuple[float, float] | None:
        """Mean (ACC, ASR) drop of column `c` against the baseline column."""
        return None if self.baseline is None else self._drop(c, self._ours)

    def cell_der(self, r: str, c: str) -> float | None:
        """Defense effectiveness rating of cell (r, c) against row r's baseline cell."""
        if self.baseline is None or c == self.baseline:
            return None
        base, cell = self.cells.get((r, self.baseline)), self.cells.get((r, c))
        if base is None or cell is None:
            return None
        return der(base, cell)

    def mean_der(self, c: str) -> float | None:
        """Mean DER of column `c` over the rows that have it and their baseline."""
        values = [v for v in (self.cell_der(r, c) for r in self.rows) if v is not None]
        return sum(values) / len(values) if values else None

    def paper_drop(self, c: str) -> tuple[float, float] | None:
        """The same from the published numbers."""
        if self.baseline is None or not self.paper:
            return None
        return self._drop(c, lambda r, col: self._paper(r, col))

    def pairs(self) -> list[tuple[str, list[tuple[str, str]]]]:
        """Each row (then Avg. Drop) as (label, [(ACC, ASR) text per column])."""

        def text(ours: tuple[float, float] | None, paper: Any) -> tuple[str, str]:
            out = ["-", "-"] if ours is None else [pct(ours[0]), pct(ours[1])]
            if paper is not None:
                out = [f"{o} ({p:.2f})" for o, p in zip(out, paper, strict=True)]
            return out[0], out[1]

        lines = [
            (r, [text(self._ours(r, c), self._paper(r, c)) for c in self.columns])
            for r in self.rows
        ]
        if self.baseline is not None:
            lines.append((DROP, [text(self.drop(c), self.paper_drop(c)) for c in self.columns]))
            ders = [self.mean_der(c) for c in self.columns]
            lines.append((DER_ROW, [("-" if d is None else f"{d:.3f}", "") for d in ders]))
        return lines

    def markdown(
        self, corner: str = "", links: dict[tuple[str, str], str] | None = None
    ) -> list[str]:
        """The table as Markdown lines; with `links`, a cell's numbers link to its anchor."""
        lines = [
            f"| {corner} | " + " | ".join(f"{c} ACC | {c} ASR" for c in self.columns) + " |",
            "| --- | " + " | ".join("---: | ---:" for _ in self.columns) + " |",
        ]
        for label, cells in self.pairs():
            anchors = [(links or {}).get((label, c)) for c in self.columns]
            cells = [
                (a, s) if k is None else (f"[{a}](#{k})", f"[{s}](#{k})")
                for (a, s), k in zip(cells, anchors, strict=True)
            ]
            label = f"**{label}**" if label in (DROP, DER_ROW) else label
            lines.append(f"| {label} | " + " | ".join(f"{a} | {s}" for a, s in cells) + " |")
        return lines

    def table(self) -> list[list[Any]]:
        """One line per (row, column), header first: ours and the published ACC/ASR, DER."""
        lines: list[list[Any]] = [["row", "column", "acc", "asr", "paper_acc", "paper_asr", "der"]]
        for r in self.rows:
            for c in self.columns:
                ours, paper = self._ours(r, c) or ("", ""), self._paper(r, c) or ("", "")
                d = self.cell_der(r, c)
                lines.append([r, c, *ours, *paper, "" if d is None else round(d, 4)])
        return lines

    def missing(self) -> list[tuple[str, str]]:
        """(row, column) pairs without a result."""
        return [(r, c) for r in self.rows for c in self.columns if (r, c) not in self.cells]


@dataclass
class Row:
    """A finished cell as the report reads it."""

    key: str
    axes: dict[str, str]
    config: dict[str, Any]
    metrics: dict[str, Any]
    timings: dict[str, Any] = field(default_factory=dict)
    folder: Path | None = None  # its run folder (result.json, triggers.png)

    def value(self, name: str) -> str:
        """The cell's label on axis `name`, or the config value at dotted key `name`."""
        if name in self.axes:
            return self.axes[name]
        node: Any = self.config
        for part in name.split("."):
            if not isinstance(node, dict) or part not in node:
                raise ConfigError(f"report: {name!r} is neither an axis nor a config key")
            node = node[part]
        return str(node)

    def get(self, name: str) -> str | None:
        """`value(name)`, or None where the cell's config has no such key."""
        try:
            return self.value(name)
        except ConfigError:
            return None

    @property
    def label(self) -> str:
        return ", ".join(self.axes.values()) or self.key[:12]

    def record(self) -> dict[str, Any]:
        """The cell's result.json."""
        if self.folder is None:
            raise ConfigError(f"report: cell {self.label} has no run folder")
        return read_run(self.folder)


@dataclass
class Part:
    """One table or figure of a report."""

    id: str
    title: str
    grid: Grid | None = None
    corner: str = ""
    figures: list[tuple[str, Path]] = field(default_factory=list)  # (caption, PNG)
    table: list[list[str]] | None = None  # a plain table, its header first
    notes: list[str] = field(default_factory=list)
    links: dict[tuple[str, str], str] = field(default_factory=dict)  # grid cell -> cell key


def _cell(row: dict[str, Any], store: ResultStore, axes: dict[str, str], key: str) -> Row:
    # a sweep folder that was moved still holds the cell under cells/
    folder = Path(row["out_dir"]) if row["out_dir"] else None
    if folder is not None and not folder.is_dir():
        folder = store.path.parent / "cells" / folder.name
    return Row(
        key,
        axes,
        json.loads(row["config_json"]),
        json.loads(row["metrics_json"]),
        json.loads(row["timings_json"]),
        folder,
    )


def _cells(store: ResultStore, sweep: str, current: list[str] | None) -> list[Row]:
    """The sweep's finished cells; with `current` (the keys its last start expanded), only
    those, in their order: a row an earlier version of the sweep file wrote is not reported."""
    rows = [
        _cell(r, store, json.loads(r["axes_json"]), r["cell"])
        for r in store.rows(sweep=sweep)
        if current is None or r["cell"] in current
    ]
    if current is not None:  # in the sweep's order, whichever start finished a cell first
        place = {key: i for i, key in enumerate(current)}
        rows.sort(key=lambda c: place[c.key])
    return rows


def _wanted(value: Any) -> list[str]:
    """A `where` value as the patterns it allows (a value, or any of a list)."""
    return [str(x) for x in value] if isinstance(value, list) else [str(value)]


def _matches(text: str | None, patterns: list[str]) -> bool:
    """Whether `text` is one of `patterns` (shell wildcards * ? [...] allowed)."""
    return text is not None and any(fnmatch.fnmatchcase(text, p) for p in patterns)


def _order(
    spec: dict[str, Any], name: str, cells: list[Row], entry: dict[str, Any] | None = None
) -> list[str]:
    """Labels of an axis in declaration order (those the entry's `where` keeps), or config
    values in order of appearance."""
    if name in spec["axes"]:
        labels = [label for label, _ in axis_values(name, spec["axes"][name])]
        want = (entry or {}).get("where", {}).get(name)
        if want is None:
            return labels
        return [label for label in labels if _matches(label, _wanted(want))]
    seen: dict[str, None] = {}
    for c in cells:
        seen.setdefault(c.value(name))
    return list(seen)


def _select(entry: dict[str, Any], cells: list[Row]) -> list[Row]:
    """The cells `where` keeps: per axis (or config key) a value, a pattern (shell wildcards) or
    any of a list of them; a cell without that config key is left out."""
    where = {k: _wanted(v) for k, v in entry.get("where", {}).items()}
    for k in where:  # a key no cell has is a typo, not an empty selection
        if cells and all(c.get(k) is None for c in cells):
            raise ConfigError(f"report: {k!r} is neither an axis nor a config key")
    return [c for c in cells if all(_matches(c.get(k), v) for k, v in where.items())]


def _extras(metrics: dict[str, Any]) -> str:
    """A defense's own scalar numbers (ABL isolation precision, DP-SGD epsilon, ...)."""
    out = []
    for k, v in metrics.items():
        if k in ("acc", "asr", "ra") or isinstance(v, (list, dict)) or v is None:
            continue
        out.append(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}")
    return ", ".join(out) or "-"


def pick(rid: str, what: str, selector: dict[str, Any], cells: list[Row]) -> Row:
    """The one cell whose labels (or config values) are those of `selector`."""
    if not isinstance(selector, dict):
        raise ConfigError(f"report {rid}: {what} must map axes (or config keys) to values")
    found = _select({"where": selector}, cells)
    if len(found) != 1:
        raise ConfigError(f"report {rid}: {what} {selector} matches {len(found)} cells, not one")
    return found[0]


def _write_csv(out: Path, name: str, table: list[list[Any]]) -> None:
    """A plain table (header first) as OUT-<name>.csv beside the page."""
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(table)
    write_text(inside(out.parent, f"{out.name}-{name}.csv"), buf.getvalue())


def _record(c: Row) -> dict[str, Any] | None:
    """The cell's result.json; None where its folder is gone (the row alone is reported)."""
    try:
        return c.record()
    except ConfigError:
        return None


def _runs(
    rid: str, entry: dict[str, Any], spec: dict[str, Any], cells: list[Row], out: Path
) -> Part:
    """One row per cell: the attack's setting, ACC and its change against the `baseline` cell,
    ASR, RA, DER, the poisoned count, run times, the defense's own numbers; with `triggers`
    (default true) each attacked cell's trigger grid."""
    chosen = _select(entry, cells)
    title = entry.get("title", rid)
    base, notes = None, []
    if "baseline" in entry:
        base = pick(rid, "baseline", entry["baseline"], cells)
        chosen = [c for c in chosen if c is not base]
        notes.append(f"Baseline (`{base.label}`): ACC {pct(base.metrics['acc'])}.")
    records = [_record(c) for c in chosen]
    with_der = base is not None and base.metrics.get("asr") is not None
    head = ["cell", "attack", "setting", "ACC", "ACC - baseline", "ASR", "RA", "DER"]
    head += ["poisoned", "train s", "total s", "defense numbers"]
    table = [head]
    for c, r in zip(chosen, records, strict=True):
        m = c.metrics
        delta = "-" if base is None else f"{m['acc'] - base.metrics['acc']:+.2f}"
        d = der(base.metrics, m) if with_der else None
        table.append(
            [
                c.label,
                c.config["attack"]["name"],
                "-" if r is None else attack_setting(r),
                pct(m["acc"]),
                delta,
                pct(m.get("asr")),
                pct(m.get("ra")),
                "-" if d is None else f"{d:.3f}",
                "-" if r is None else str(r["poison"]["count"]),
                f"{c.timings.get('train_s', 0):.0f}",
                f"{c.timings.get('total_s', 0):.0f}",
                _extras(m),
            ]
        )
    # columns no cell fills are left out (no baseline: no change or DER; no defense numbers)
    keep = [i for i, h in enumerate(head) if i < 3 or any(row[i] != "-" for row in table[1:])]
    table = [[row[i] for i in keep] for row in table]
    notes.append(
        "Run times are wall-clock seconds of training and of the whole run (data, attack "
        "preparation, training, evaluation) on the machine that ran them."
    )
    figures = []
    for c in chosen if entry.get("triggers", True) else []:
        grid = c.folder / "triggers.png" if c.folder is not None else None
        if c.config["attack"]["name"] != "none" and grid is not None and grid.is_file():
            name = slug(f"{out.name}-{rid}-{c.label}") + ".png"
            target = inside(out.parent, name)
            shutil.copyfile(grid, target)
            figures.append((f"{c.label}: clean, triggered, change", target))
    _write_csv(out, rid, table)
    return Part(rid, title, table=table, figures=figures, notes=notes)


def _grid(
    rid: str, entry: dict[str, Any], spec: dict[str, Any], cells: list[Row], out: Path
) -> Part:
    rows, cols = entry["rows"], entry["columns"]
    chosen = _select(entry, cells)
    found: dict[tuple[str, str], dict[str, Any]] = {}
    links = {}
    for c in chosen:
        key = (c.value(rows), c.value(cols))
        if key in found:
            raise ConfigError(
                f"report {rid}: several cells at {rows}={key[0]}, {cols}={key[1]}; pin the other "
                "axes with `where`"
            )
        found[key], links[key] = c.metrics, c.key
    grid = Grid(
        _order(spec, rows, chosen, entry),
        _order(spec, cols, chosen, entry),
        found,
        baseline=entry.get("baseline"),
        paper=entry.get("paper", {}),
    )
    notes = []
    if grid.paper:
        notes.append("In parentheses: the paper's published numbers.")
    # a pair the sweep's `exclude` leaves out is not missing
    rules = [rule for rule in spec.get("exclude", []) if set(rule) <= {rows, cols}]
    missing = [
        (r, c)
        for r, c in grid.missing()
        if not any(excluded_by(rule, {rows: r, cols: c}) for rule in rules)
    ]
    if missing:
        cells_text = ", ".join(f"{r}/{c}" for r, c in missing)
        notes.append(f"Not run yet (or failed): {cells_text}.")
    _write_csv(out, rid, grid.table())
    title = entry.get("title", rid)
    return Part(rid, title, grid=grid, corner=rows, notes=notes, links=links)


def _legend(fig, axes) -> None:
    """One legend for every panel, each label once."""
    handles: dict[str, Any] = {}
    for ax in axes:
        for h, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, h)
    axes[-1].legend(
        handles.values(), handles.keys(), fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5)
    )


def _finish(fig, axes, xlabel: str | None, rid: str, entry: dict[str, Any], out: Path) -> Path:
    """The styling every report figure shares, one legend, the title; saved as OUT-<rid>.png."""
    for ax in axes:
        if xlabel is not None:
            ax.set_xlabel(xlabel)
        ax.set_ylim(-3, 103)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("%  (ACC dashed, ASR solid)")
    _legend(fig, axes)
    fig.suptitle(entry.get("title", rid), fontsize=10)
    fig.tight_layout()
    return save_figure(fig, inside(out.parent, f"{out.name}-{rid}.png"))


def _lines(
    rid: str, entry: dict[str, Any], spec: dict[str, Any], cells: list[Row], out: Path
) -> Part:
    """ACC (dashed) and ASR (solid) against a numeric x, one panel per `panels`, one colour per
    `lines` (Gao Fig. 2)."""
    chosen = _select(entry, cells)
    x, panels_key, lines_key = entry["x"], entry.get("panels"), entry["lines"]
    panels = _order(spec, panels_key, chosen, entry) if panels_key else [""]
    lines = _order(spec, lines_key, chosen, entry)
    plt = pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, panel in zip(axes[0], panels, strict=True):
        for i, line in enumerate(lines):
            pts = sorted(
                (float(c.value(x)), c.metrics["acc"], c.metrics.get("asr"))
                for c in chosen
                if c.value(lines_key) == line and (not panels_key or c.value(panels_key) == panel)
            )
            if not pts:
                continue
            xs = [p[0] for p in pts]
            colour = colours[i % len(colours)]
            ax.plot(xs, [p[1] for p in pts], "--s", c=colour, ms=3, label=f"{line} ACC")
            if pts[0][2] is not None:
                ax.plot(xs, [p[2] for p in pts], "-o", c=colour, ms=3, label=f"{line} ASR")
        ax.set_title(panel, fontsize=10)
    path = _finish(fig, list(axes[0]), x, rid, entry, out)
    return Part(rid, entry.get("title", rid), figures=[(entry.get("title", rid), path)])


def _curve(
    rid: str, entry: dict[str, Any], spec: dict[str, Any], cells: list[Row], out: Path
) -> Part:
    """ACC (dashed) and ASR (solid) against AFT steps, one colour per `lines` (Mu Fig. 3)."""
    chosen = [c for c in _select(entry, cells) if c.metrics.get("aft_curve")]
    lines_key = entry["lines"]
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, line in enumerate(_order(spec, lines_key, chosen, entry)):
        for c in (c for c in chosen if c.value(lines_key) == line):
            curve = c.metrics["aft_curve"]
            steps = [p["step"] for p in curve]
            colour = colours[i % len(colours)]
            ax.plot(steps, [p["acc"] for p in curve], "--", c=colour, label=f"{line} ACC")
            ax.plot(steps, [p["asr"] for p in curve], "-", c=colour, label=f"{line} ASR")
    path = _finish(fig, [ax], "fine-tuning step", rid, entry, out)
    notes = [] if chosen else ["No cell holds an AFT curve yet."]
    return Part(
        rid, entry.get("title", rid), figures=[(entry.get("title", rid), path)], notes=notes
    )


def _detect(
    rid: str, entry: dict[str, Any], spec: dict[str, Any], cells: list[Row], out: Path
) -> Part:
    """A model zoo's detection metrics per detector and attack, and ROC curves (TDC's layout).

    `group` (default attack.name) names a model's attack; a cell whose attack.name is none is a
    benign model; `planted` (default 50) is the ASR an attacked model needs to count infected."""
    chosen = [c for c in _select(entry, cells) if c.metrics.get("detect")]
    group, planted = entry.get("group", "attack.name"), float(entry.get("planted", 50))
    members = []
    for c in chosen:
        attacked = c.config["attack"]["name"] != "none"
        members.append(
            Member(
                c.label,
                c.value(group) if attacked else None,
                c.config["attack"].get("target") if attacked else None,
                c.metrics.get("asr"),
                c.metrics["detect"],
            )
        )
    found = [set(m.detections) for m in members]
    detectors = entry.get("detectors") or sorted(set.intersection(*found) if found else set())
    missing = [m.name for m in members if not set(detectors) <= set(m.detections)]
    if missing:
        raise ConfigError(f"report {rid}: {', '.join(missing[:5])} lack detector results")
    groups = list(dict.fromkeys(m.group for m in members if m.group is not None))
    title = entry.get("title", rid)
    notes = [
        f"Benign: models trained without an attack. Infected: attacked models with ASR >= "
        f"{planted:g}%. Target acc: share of infected models whose most anomalous class is the "
        "target. Flagged: share of models with a class above the detector's threshold."
    ]
    benign, infected, failed = split(members, planted)
    if failed:
        names = ", ".join(f"{m.name} (ASR {pct(m.asr)})" for m in failed)
        notes.append(f"Not scored (the backdoor did not take): {names}.")
    if not members:
        return Part(rid, title, notes=["No cell holds detector results yet."])
    table = detection_rows(benign, infected, detectors, groups)
    _write_csv(out, rid, table)
    models = per_model_csv(members, detectors)
    write_text(inside(out.parent, f"{out.name}-{rid}-models.csv"), models)
    fig = roc_figure(benign, infected, detectors, groups, title)
    path = save_figure(fig, inside(out.parent, f"{out.name}-{rid}.png"))
    return Part(rid, title, figures=[(title, path)], table=table, notes=notes)


TABLES = ("runs", "grid", "detect")  # the kinds --table may name
FIGURES = ("lines", "curve", "detect", "analysis")  # and --figure

# (rid, entry, spec, cells, out stem) -> Part; layers above add theirs with report_kind
REPORT_KINDS: dict[str, Callable[..., Part]] = {
    "runs": _runs,
    "grid": _grid,
    "lines": _lines,
    "curve": _curve,
    "detect": _detect,
}


def report_kind(name: str) -> Callable[[Callable[..., Part]], Callable[..., Part]]:
    """Register a report kind under `name` (e.g. `analysis`, from backdoorlab.analysis)."""

    def register(fn: Callable[..., Part]) -> Callable[..., Part]:
        if name in REPORT_KINDS:
            raise ConfigError(f"report kind {name!r} is already registered")
        REPORT_KINDS[name] = fn
        return fn

    return register


def _anchor(key: str) -> str:
    """The HTML id of a cell's config (the first 12 characters of its hash)."""
    return f"cell-{key[:12]}"


def _markdown(
    title: str,
    notes: str,
    sections: list[Part],
    command: str | None,
    findings: str | None,
    image: Callable[[Path], str],
    cell_links: bool = False,
) -> str:
    """The page as Markdown; `image` gives a figure's address, `cell_links` links grid numbers
    to their cell's config (in the HTML page)."""
    lines = [f"# {title}", "", *written_by(command)]
    if notes:
        lines += [notes, ""]
    for s in sections:
        lines += [f"## {s.title}", ""]
        if s.grid is not None:
            links = {k: _anchor(v) for k, v in s.links.items()} if cell_links else None
            lines += [*s.grid.markdown(s.corner, links), ""]
        if s.table is not None:
            head, *body = s.table
            lines += [f"| {' | '.join(head)} |", "|" + " --- |" * len(head)]
            lines += [f"| {' | '.join(r)} |" for r in body] + [""]
        for caption, path in s.figures:
            lines += [f"![{caption}]({image(path)})", ""]
        lines += [*(f"{n}\n" for n in s.notes)]
    if findings:
        lines += ["## Observations", "", findings, ""]
    return "\n".join(lines).rstrip() + "\n"


_CSS = """
body{font:15px/1.45 system-ui,sans-serif;margin:2em auto;max-width:76em;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.6em 0 1.2em;font-variant-numeric:tabular-nums}
th,td{border:1px solid #ccc;padding:.25em .55em} thead th{background:#f3f3f3}
td a{color:inherit;text-decoration:none;border-bottom:1px dotted #888}
img{max-width:100%;border:1px solid #eee} pre{background:#f7f7f7;padding:.6em;overflow:auto}
details{margin:.2em 0} summary{cursor:pointer}
"""

_JS = """
function openCell(){var d=document.getElementById(location.hash.slice(1));
if(d&&d.tagName==='DETAILS'){d.open=true;d.scrollIntoView();}}
window.addEventListener('hashchange',openCell);window.addEventListener('load',openCell);
"""


def _html(page: str, title: str, cells: list[Row]) -> str:
    """One self-contained HTML page: the Markdown page rendered, then every cell's config."""
    import markdown

    e = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{e(title)}</title><style>{_CSS}</style><script>{_JS}</script></head><body>",
        markdown.markdown(page, extensions=["tables"], output_format="html"),
        "<h2>Cells</h2><p>Click a cell to see its resolved config.</p>",
    ]
    for c in cells:
        label = ", ".join(f"{k}={v}" for k, v in c.axes.items())
        m = c.metrics
        parts.append(
            f'<details id="{_anchor(c.key)}"><summary>{e(label)}: ACC {pct(m.get("acc"))}, '
            f"ASR {pct(m.get('asr'))}</summary><pre>"
            f"{e(yaml.safe_dump(c.config, sort_keys=False))}</pre></details>"
        )
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


PLAIN_RUNS = "runs"  # the report of a database that holds runs of `run` and no sweep


def _plain_runs(store: ResultStore, names: list[str]) -> tuple[dict[str, Any], list[Row]]:
    """A sweep-less database's runs (the latest of each name; with `names`, those) as one
    `runs` table."""
    latest = {r["name"]: r for r in store.rows(status="finished") if r["sweep"] is None}
    missing = sorted(set(names) - set(latest))
    if missing:
        raise ConfigError(f"{store.path} holds no run {', '.join(map(repr, missing))}")
    rows = [latest[n] for n in names] if names else list(latest.values())
    cells = [_cell(r, store, {"run": r["name"]}, r["run_id"]) for r in rows]
    entry = {"kind": "runs", "title": "Runs", "triggers": False}
    return {"name": PLAIN_RUNS, "axes": {}, "reports": {PLAIN_RUNS: entry}}, cells


def report(
    db: str | Path,
    out: str | Path | None = None,
    *,
    sweep: str | None = None,
    tables: list[str] | None = None,
    figures: list[str] | None = None,
    runs: list[str] | None = None,
    fmt: str = "md",
    command: str | None = None,
    notes: str | Path | None = None,
) -> tuple[Path | None, list[Part]]:
    """Write the report of sweep `sweep` (default: the only one) held in `db`; a database of
    plain runs (no sweep) gives one table of its runs (with `runs`, of those names).

    `notes` is a Markdown file of observations, put under the tables and figures.

    `out` is the stem of what is written (default: the report/<sweep> beside the database): with
    fmt 'md' OUT.md plus OUT-<table>.csv and OUT-<figure>.png, with 'html' one OUT.html; with
    'console' nothing is written (the caller prints the sections). `tables` and `figures` keep
    the named ones (all without either). Returns the main file (None for 'console') and the
    sections.
    """
    if fmt not in ("md", "html", "console"):
        raise ConfigError(f"--format: unknown {fmt!r} (md, html or console)")
    findings = read_notes(notes)
    db = Path(db)
    if not db.is_file():
        raise ConfigError(f"{db}: no results database there")
    store = ResultStore(db)
    specs = store.sweeps()
    if runs and specs:
        raise ConfigError(f"--run: {db} holds sweeps; name their cells' reports instead")
    if not specs:
        if sweep is not None:
            raise ConfigError(f"{db} holds no sweep {sweep!r} (it holds plain runs)")
        spec, cells = _plain_runs(store, runs or [])
        if not cells:
            raise ConfigError(f"{db} holds no finished run")
        sweep = PLAIN_RUNS
    else:
        if sweep is None:
            if len(specs) > 1:
                raise ConfigError(f"{db} holds several sweeps ({', '.join(specs)}): name one")
            sweep = next(iter(specs))
        if sweep not in specs:
            raise ConfigError(f"{db} holds no sweep {sweep!r} ({', '.join(specs)})")
        spec = specs[sweep]
        cells = _cells(store, sweep, spec.get("cells"))
    entries = spec.get("reports", {})
    for rid in [sweep, *entries]:  # ids from the database become file names: checked first
        check_name(rid, f"{db}: report id")
    only = [*(tables or []), *(figures or [])]
    unknown = sorted(set(only) - set(entries))
    if unknown:
        raise ConfigError(
            f"report: {', '.join(unknown)} not in the sweep's reports ({', '.join(entries)})"
        )
    for names, kinds, what in ((tables, TABLES, "table"), (figures, FIGURES, "figure")):
        for rid in names or []:
            if entries[rid].get("kind") not in kinds:
                raise ConfigError(f"report: {rid} is not a {what}")
    with tempfile.TemporaryDirectory() as scratch:  # where 'console' lets the kinds write
        if fmt == "console":
            stem = Path(scratch) / sweep
        else:
            stem = Path(out) if out is not None else inside(db.parent / "report", sweep)
            stem.parent.mkdir(parents=True, exist_ok=True)
        sections = []
        for rid, entry in entries.items():
            if only and rid not in only:
                continue
            kind = entry.get("kind")
            if kind not in REPORT_KINDS:
                known = ", ".join(REPORT_KINDS)
                raise ConfigError(f"report {rid}: unknown kind {kind!r} ({known})")
            sections.append(REPORT_KINDS[kind](rid, entry, spec, cells, stem))
        if fmt == "console":
            return None, sections
    title = spec.get("title") or sweep
    intro = spec.get("notes", "")
    if fmt == "html":
        text = _markdown(title, intro, sections, command, findings, _data_uri, cell_links=True)
        return write_text(stem.with_suffix(".html"), _html(text, title, cells)), sections
    folder = stem.parent.resolve()  # figures linked relative to the page

    def relative(path: Path) -> str:
        return Path(os.path.relpath(path, folder)).as_posix()

    text = _markdown(title, intro, sections, command, findings, relative)
    return write_text(stem.with_suffix(".md"), text), sections
