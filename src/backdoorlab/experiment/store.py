"""The results database: one SQLite row per finished run."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT UNIQUE NOT NULL,
    created TEXT NOT NULL,
    name TEXT NOT NULL,
    config_hash TEXT NOT NULL,
    dataset TEXT NOT NULL,
    model TEXT NOT NULL,
    attack TEXT NOT NULL,
    defense TEXT NOT NULL,
    seed INTEGER NOT NULL,
    acc REAL,
    asr REAL,
    ra REAL,
    status TEXT NOT NULL,
    out_dir TEXT,
    config_json TEXT NOT NULL,
    metrics_json TEXT NOT NULL,
    timings_json TEXT NOT NULL,
    versions_json TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_config_hash ON runs (config_hash);
"""

COLUMNS = (
    "run_id", "created", "name", "config_hash", "dataset", "model", "attack", "defense", "seed",
    "acc", "asr", "ra", "status", "out_dir", "config_json", "metrics_json", "timings_json",
    "versions_json",
)  # fmt: skip


class ResultStore:
    """A results database file; every write is one transaction."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as con:
            con.executescript(SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        con = sqlite3.connect(self.path, timeout=60)
        try:
            with con:
                yield con
        finally:
            con.close()

    def add(self, record: dict[str, Any]) -> None:
        """Insert one finished run (keys as in COLUMNS; *_json values may be objects)."""
        row = []
        for col in COLUMNS:
            value = record.get(col)
            if col.endswith("_json") and not isinstance(value, str):
                value = json.dumps(value, sort_keys=True)
            row.append(value)
        marks = ", ".join("?" for _ in COLUMNS)
        with self._connect() as con:
            con.execute(f"INSERT INTO runs ({', '.join(COLUMNS)}) VALUES ({marks})", row)

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
