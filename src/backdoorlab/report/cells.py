"""A sweep's finished cells as a report reads them, and the selection of cells by axis label or
config value (`where`)."""

from __future__ import annotations

import csv
import fnmatch
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backdoorlab.errors import ConfigError
from backdoorlab.experiment.sweep_spec import axis_values
from backdoorlab.paths import inside
from backdoorlab.records.files import write_text
from backdoorlab.records.metrics import Metrics
from backdoorlab.records.record import RunRecord, read_run
from backdoorlab.records.store import ResultStore
from backdoorlab.report.grid import Grid


@dataclass
class Row:
    """A finished cell as the report reads it."""

    key: str
    axes: dict[str, str]
    config: dict[str, Any]
    metrics: Metrics
    timings: dict[str, Any] = field(default_factory=dict)
    folder: Path | None = None  # its run folder (result.json, triggers.png)
    poison: dict[str, Any] | None = None  # the poisoned set's bookkeeping, from the database
    versions: dict[str, str] = field(default_factory=dict)  # package versions and the CPU

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

    def record(self) -> RunRecord:
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


def cell_row(row: dict[str, Any], store: ResultStore, axes: dict[str, str], key: str) -> Row:
    """A results-database row as the report reads it."""
    # a sweep folder that was moved still holds the cell under cells/
    folder = Path(row["out_dir"]) if row["out_dir"] else None
    if folder is not None and not folder.is_dir():
        folder = store.path.parent / "cells" / folder.name
    return Row(
        key,
        axes,
        json.loads(row["config_json"]),
        Metrics.from_dict(json.loads(row["metrics_json"])),
        json.loads(row["timings_json"]),
        folder,
        json.loads(row["poison_json"]) if row.get("poison_json") else None,
        json.loads(row["versions_json"]) if row.get("versions_json") else {},
    )


def sweep_cells(store: ResultStore, sweep: str, current: list[str] | None) -> list[Row]:
    """The sweep's finished cells; with `current` (the keys its last start expanded), only
    those, in their order: a row an earlier version of the sweep file wrote is not reported."""
    rows = [
        cell_row(r, store, json.loads(r["axes_json"]), r["cell"])
        for r in store.rows(sweep=sweep)
        if current is None or r["cell"] in current
    ]
    if current is not None:  # in the sweep's order, whichever start finished a cell first
        place = {key: i for i, key in enumerate(current)}
        rows.sort(key=lambda c: place[c.key])
    return rows


def wanted(value: Any) -> list[str]:
    """A `where` value as the patterns it allows (a value, or any of a list)."""
    return [str(x) for x in value] if isinstance(value, list) else [str(value)]


def matches(text: str | None, patterns: list[str]) -> bool:
    """Whether `text` is one of `patterns` (shell wildcards * ? [...] allowed)."""
    return text is not None and any(fnmatch.fnmatchcase(text, p) for p in patterns)


def order(
    spec: dict[str, Any], name: str, cells: list[Row], entry: dict[str, Any] | None = None
) -> list[str]:
    """Labels of an axis in declaration order (those the entry's `where` keeps), or config
    values in order of appearance."""
    if name in spec["axes"]:
        labels = [label for label, _ in axis_values(name, spec["axes"][name])]
        want = (entry or {}).get("where", {}).get(name)
        if want is None:
            return labels
        return [label for label in labels if matches(label, wanted(want))]
    seen: dict[str, None] = {}
    for c in cells:
        seen.setdefault(c.value(name))
    return list(seen)


def select(entry: dict[str, Any], cells: list[Row]) -> list[Row]:
    """The cells `where` keeps: per axis (or config key) a value, a pattern (shell wildcards) or
    any of a list of them; a cell without that config key is left out."""
    where = {k: wanted(v) for k, v in entry.get("where", {}).items()}
    for k in where:  # a key no cell has is a typo, not an empty selection
        if cells and all(c.get(k) is None for c in cells):
            raise ConfigError(f"report: {k!r} is neither an axis nor a config key")
    return [c for c in cells if all(matches(c.get(k), v) for k, v in where.items())]


def extras(metrics: Metrics) -> str:
    """DER and a defense's own scalar numbers (ABL isolation precision, DP-SGD epsilon, ...)."""
    out = [f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
           for k, v in metrics.scalars().items()]  # fmt: skip
    return ", ".join(out) or "-"


def pick(rid: str, what: str, selector: dict[str, Any], cells: list[Row]) -> Row:
    """The one cell whose labels (or config values) are those of `selector`."""
    if not isinstance(selector, dict):
        raise ConfigError(f"report {rid}: {what} must map axes (or config keys) to values")
    found = select({"where": selector}, cells)
    if len(found) != 1:
        raise ConfigError(f"report {rid}: {what} {selector} matches {len(found)} cells, not one")
    return found[0]


def write_csv(out: Path, name: str, table: list[list[Any]]) -> None:
    """A plain table (header first) as OUT-<name>.csv beside the page."""
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(table)
    write_text(inside(out.parent, f"{out.name}-{name}.csv"), buf.getvalue())


def record_of(c: Row) -> RunRecord | None:
    """The cell's result.json; None where its folder is gone (the row alone is reported)."""
    try:
        return c.record()
    except ConfigError:
        return None


def family(cell: Row, keys: list[str]) -> str:
    """A model's family: its values at the `keys` it has, joined by ' / '; a file path shows
    as its file name without suffix (a pattern attack's trigger image)."""
    values = [v for v in (cell.get(k) for k in keys) if v is not None]
    if not values:
        raise ConfigError(f"report: {cell.label} has none of the group keys {keys}")
    return " / ".join(Path(v).stem if "/" in v else v for v in values)
