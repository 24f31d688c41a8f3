"""The results database: one SQLite row per finished run (and per finished sweep cell)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from backdoorlab.errors import ConfigError

# the runs table's columns in order; a sweep cell's row: `cell` is its config hash (unique: a
# cell is recorded once), `axes_json` its label on each axis; `poison_json` the poisoned set's
# bookkeeping (count, control, ...), so a report needs no run folder for it
_COLUMN_TYPES = (
    ("run_id", "TEXT UNIQUE NOT NULL"), ("created", "TEXT NOT NULL"), ("name", "TEXT NOT NULL"),
    ("config_hash", "TEXT NOT NULL"), ("dataset", "TEXT NOT NULL"), ("model", "TEXT NOT NULL"),
    ("attack", "TEXT NOT NULL"), ("defense", "TEXT NOT NULL"), ("seed", "INTEGER NOT NULL"),
    ("acc", "REAL"), ("asr", "REAL"), ("ra", "REAL"), ("status", "TEXT NOT NULL"),
    ("out_dir", "TEXT"), ("config_json", "TEXT NOT NULL"), ("metrics_json", "TEXT NOT NULL"),
    ("timings_json", "TEXT NOT NULL"), ("versions_json", "TEXT NOT NULL"), ("sweep", "TEXT"),
    ("cell", "TEXT"), ("axes_json", "TEXT"), ("poison_json", "TEXT"),
)  # fmt: skip
COLUMNS = tuple(name for name, _ in _COLUMN_TYPES)
_COLUMN_LINES = "".join(f"    {name} {kind},\n" for name, kind in _COLUMN_TYPES)
SCHEMA = f"""
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
{_COLUMN_LINES.rstrip().rstrip(",")}
);
CREATE INDEX IF NOT EXISTS runs_config_hash ON runs (config_hash);
CREATE UNIQUE INDEX IF NOT EXISTS runs_cell ON runs (cell);
CREATE TABLE IF NOT EXISTS sweeps (
    name TEXT PRIMARY KEY,
    updated TEXT NOT NULL,
    spec_json TEXT NOT NULL
);
"""


class ResultStore:
    """A results database file; every write is one transaction."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as con:
            con.executescript(SCHEMA)
            have = {r[1] for r in con.execute("PRAGMA table_info(runs)")}
            for name, kind in _COLUMN_TYPES:  # a database written before a column existed
                if name not in have:
                    con.execute(f"ALTER TABLE runs ADD COLUMN {name} {kind}")

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        con = sqlite3.connect(self.path, timeout=60)
        try:
            with con:
                yield con
        finally:
            con.close()

    def add(self, record: dict[str, Any]) -> bool:
        """Insert one finished run (keys as in COLUMNS; *_json values may be objects).

        A row whose `cell` is already recorded is left out; returns whether the row was added.
        """
        row = []
        for col in COLUMNS:
            value = record.get(col)
            if col.endswith("_json") and value is not None and not isinstance(value, str):
                value = json.dumps(value, sort_keys=True)
            row.append(value)
        marks = ", ".join("?" for _ in COLUMNS)
        sql = (
            f"INSERT INTO runs ({', '.join(COLUMNS)}) VALUES ({marks}) "
            "ON CONFLICT (cell) DO NOTHING"
        )
        with self._connect() as con:
            return con.execute(sql, row).rowcount == 1

    def absorb(self, other: str | Path, sweep: str, cells: set[str]) -> int:
        """Copy from the results database `other` the rows of sweep `sweep` whose cell is one
        of `cells` and not recorded here; returns how many were copied."""
        path = Path(other)
        if path.resolve() == self.path.resolve():
            return 0
        if not path.is_file():
            raise ConfigError(f"`merge` {path}: no such results database")
        theirs = ResultStore(path).rows(sweep=sweep)
        return sum(self.add(row) for row in theirs if row["cell"] in cells)

    def cells(self) -> set[str]:
        """The cell hashes already recorded."""
        with self._connect() as con:
            return {r[0] for r in con.execute("SELECT cell FROM runs WHERE cell IS NOT NULL")}

    def put_sweep(self, name: str, spec: dict[str, Any]) -> None:
        """Record (or update) the spec of sweep `name`, so reports can read its layout."""
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        with self._connect() as con:
            con.execute(
                "INSERT OR REPLACE INTO sweeps (name, updated, spec_json) VALUES (?, ?, ?)",
                (name, now, json.dumps(spec)),  # keeps the order of axes and labels
            )

    def sweeps(self) -> dict[str, dict[str, Any]]:
        """Every recorded sweep spec by name."""
        with self._connect() as con:
            rows = con.execute("SELECT name, spec_json FROM sweeps ORDER BY name").fetchall()
        return {name: json.loads(spec) for name, spec in rows}

    def rows(self, **where: Any) -> list[dict[str, Any]]:
        """All runs (optionally filtered by equality on columns), oldest first."""
        unknown = set(where) - set(COLUMNS)
        if unknown:
            raise ValueError(f"unknown columns: {sorted(unknown)}")
        clause = " AND ".join(f"{k} = ?" for k in where)
        sql = "SELECT * FROM runs" + (f" WHERE {clause}" if clause else "") + " ORDER BY id"
        with self._connect() as con:
            con.row_factory = sqlite3.Row
            return [dict(r) for r in con.execute(sql, list(where.values()))]
