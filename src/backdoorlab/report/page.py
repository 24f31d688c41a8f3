"""Reports of a sweep's results database: the papers' tables and figures, as Markdown + CSV + PNG
or as one self-contained HTML page.

The layouts come from the `reports` section of the sweep file (stored in the database by the
sweep), each entry one of REPORT_KINDS:

    table7: {kind: grid, rows: attack, columns: defense, baseline: none, paper: {...}}
    fig2:   {kind: lines, x: defense.eps, panels: defense.threat, lines: attack}
    fig3:   {kind: curve, lines: attack, where: {defense: aft}}
    zoo:    {kind: detect, group: attack.name, planted: 50}
    check:  {kind: confounds, features: [model.width, seed, acc]}

`rows`, `columns`, `x`, `panels` and `lines` name an axis of the sweep or a dotted config key;
`where` keeps the cells with those labels (or config values).
"""

from __future__ import annotations

import base64
import html
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from backdoorlab.errors import ConfigError
from backdoorlab.metrics.core import pct
from backdoorlab.paths import check_name, inside
from backdoorlab.records.files import write_text
from backdoorlab.records.store import ResultStore
from backdoorlab.report.cells import Part, Row, cell_row, select, sweep_cells
from backdoorlab.report.kinds import FIGURES, REPORT_KINDS, TABLES


def written_by(command: str | None) -> list[str]:
    """The Markdown lines that name the command a report was written by (none without one)."""
    if not command:
        return []
    source = "every number below comes from the results database it reads."
    return [f"Written by `{command}`; {source}", ""]


def read_notes(notes: str | Path | None) -> str | None:
    """The text of a notes file; a missing file is one ConfigError line."""
    if notes is None:
        return None
    try:
        return Path(notes).read_text().strip()
    except OSError as exc:
        raise ConfigError(f"`notes` {notes}: cannot read: {exc.strerror}") from None


NOT_RUN = "No cell of this part has run yet."


def threads_line(cells: list[Row]) -> str:
    """How many CPU threads the cells ran with: numbers measured on a CPU change with it."""
    counts = {c.config.get("performance", {}).get("threads") for c in cells}
    if not cells or counts == {None}:
        return ""
    text = " or ".join(sorted("the default" if n is None else str(n) for n in counts))
    each = "each" if len(counts) == 1 else "each (cells differ)"
    line = (
        f"Cells ran with {text} CPU thread{'s' if counts != {1} else ''} {each} "
        "(`performance.threads`); results on a CPU change with the thread count."
    )
    cpus = sorted({c.versions["cpu"] for c in cells if c.versions.get("cpu")})
    if cpus:  # recorded since 2026-12-06; earlier cells do not say
        line += f" They ran on: {'; '.join(cpus)}."
    return line


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
            f'<details id="{_anchor(c.key)}"><summary>{e(label)}: ACC {pct(m.acc)}, '
            f"ASR {pct(m.asr)}</summary><pre>"
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
    cells = [cell_row(r, store, {"run": r["name"]}, r["run_id"]) for r in rows]
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
        raise ConfigError(f"`fmt` {fmt!r}: unknown (md, html or console)")
    findings = read_notes(notes)
    db = Path(db)
    if not db.is_file():
        raise ConfigError(f"{db}: no results database there")
    store = ResultStore(db)
    specs = store.sweeps()
    if runs and specs:
        raise ConfigError(f"`runs`: {db} holds sweeps; name their cells' reports instead")
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
        cells = sweep_cells(store, sweep, spec.get("cells"))
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
            if select(entry, cells):
                sections.append(REPORT_KINDS[kind](rid, entry, spec, cells, stem))
            else:  # rows, panels named by config values: none to lay out before a cell has run
                sections.append(Part(rid, entry.get("title", rid), notes=[NOT_RUN]))
        if fmt == "console":
            return None, sections
    title = spec.get("title") or sweep
    intro = "\n\n".join(t for t in (spec.get("notes", ""), threads_line(cells)) if t)
    if fmt == "html":
        text = _markdown(title, intro, sections, command, findings, _data_uri, cell_links=True)
        return write_text(stem.with_suffix(".html"), _html(text, title, cells)), sections
    folder = stem.parent.resolve()  # figures linked relative to the page

    def relative(path: Path) -> str:
        return Path(os.path.relpath(path, folder)).as_posix()

    text = _markdown(title, intro, sections, command, findings, relative)
    return write_text(stem.with_suffix(".md"), text), sections
