"""Rebuild results pages (Markdown, CSV, the figures drawn from the database, HTML) from the
databases kept beside them (docs/results/data/<page>.db.gz) alone, without run folders: what to
run after a change to the report's code or to a page's notes. Trigger grids and the numbers of
analyses that load models are the page's own copies. tests/report/test_published_pages.py
rebuilds each page the same way into a temporary folder and compares.

    .venv/bin/python -m scripts.rebuild_pages [PAGE ...]     (default: every page kept so)
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import html
import re
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path

from backdoorlab.records.store import ResultStore
from backdoorlab.report import report
from backdoorlab.report.cells import Row, sweep_cells

DOCS = Path(__file__).resolve().parents[1] / "docs" / "results"
HEADS = {"md": r"^Written by `(.+?)`;", "html": r"Written by <code>(.+?)</code>;"}


def kept_pages() -> list[str]:
    """The pages whose database is kept beside them."""
    return sorted(p.name.removesuffix(".db.gz") for p in (DOCS / "data").glob("*.db.gz"))


@contextlib.contextmanager
def kept_database(page: str) -> Iterator[Path]:
    """A temporary copy of the page's kept database, its run-folder paths cleared (so that a
    reader sees the database alone, not run folders left on disk)."""
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "results.db"
        db.write_bytes(gzip.decompress((DOCS / "data" / f"{page}.db.gz").read_bytes()))
        with sqlite3.connect(db) as con:
            con.execute("UPDATE runs SET out_dir = NULL")
        con.close()
        yield db


def kept_cells(page: str) -> list[Row]:
    """The finished cells of a page's kept database, as its report reads them."""
    with kept_database(page) as db:
        store = ResultStore(db)
        (name, spec), *more = store.sweeps().items()
        if more:
            raise SystemExit(f"{page}: the kept database holds several sweeps")
        return sweep_cells(store, name, spec.get("cells"))


def rebuild(page: str, into: Path = DOCS, formats: tuple[str, ...] = ("md", "html")) -> Path:
    """Write `into`/<page>.{md,html} (and its CSVs and figures) from the page's kept database,
    with the command and notes of the published page; the path of its last page."""
    commands = {}
    for fmt in formats:
        found = re.search(HEADS[fmt], (DOCS / f"{page}.{fmt}").read_text(), re.M)
        if found is None:
            raise SystemExit(f"{page}.{fmt} does not name the command that wrote it")
        commands[fmt] = html.unescape(found.group(1))
    if into != DOCS:
        # trigger grids are copied from run folders, which are not kept, and an analysis that
        # loads models keeps its numbers in its folder (which cells and options they came from):
        # the page's own copies stand in for both
        for png in DOCS.glob(f"{page}-*.png"):
            shutil.copyfile(png, into / png.name)
        for folder in DOCS.glob(f"{page}-*/"):
            shutil.copytree(folder, into / folder.name)
    with kept_database(page) as db:
        for fmt, command in commands.items():
            out, _ = report(db, into / page, fmt=fmt, command=command,
                            notes=DOCS / "notes" / f"{page}.md")  # fmt: skip
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pages", nargs="*", help="page names (default: every kept page)")
    args = parser.parse_args()
    kept = kept_pages()
    for page in args.pages or kept:
        if page not in kept:
            raise SystemExit(f"{page}: no database kept in {DOCS / 'data'}")
        rebuild(page)
        print(f"rebuilt {page}")


if __name__ == "__main__":
    main()
