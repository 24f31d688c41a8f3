"""Rebuild results pages (Markdown, CSV, the figures drawn from the database, HTML) from the
databases kept beside them (docs/results/data/<page>.db.gz) alone, without run folders: what to
run after a change to the report's code or to a page's notes. Trigger grids and the numbers of
analyses that load models are the page's own copies (as in tests/report/test_published_pages.py).

    .venv/bin/python -m scripts.rebuild_pages [PAGE ...]     (default: every page kept so)
"""

from __future__ import annotations

import argparse
import gzip
import html
import re
import sqlite3
import tempfile
from pathlib import Path

from backdoorlab.report import report

DOCS = Path(__file__).resolve().parents[1] / "docs" / "results"


def rebuild(page: str) -> None:
    """Write docs/results/<page>.{md,html} (and its CSVs and figures) from its kept database."""
    commands = {}
    heads = {"md": r"^Written by `(.+?)`;", "html": r"Written by <code>(.+?)</code>;"}
    for fmt, pattern in heads.items():
        found = re.search(pattern, (DOCS / f"{page}.{fmt}").read_text(), re.M)
        if found is None:
            raise SystemExit(f"{page}.{fmt} does not name the command that wrote it")
        commands[fmt] = html.unescape(found.group(1))
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "results.db"
        db.write_bytes(gzip.decompress((DOCS / "data" / f"{page}.db.gz").read_bytes()))
        with sqlite3.connect(db) as con:  # the database alone, not run folders left on disk
            con.execute("UPDATE runs SET out_dir = NULL")
        con.close()
        for fmt, command in commands.items():
            report(db, DOCS / page, fmt=fmt, command=command,
                   notes=DOCS / "notes" / f"{page}.md")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pages", nargs="*", help="page names (default: every kept page)")
    args = parser.parse_args()
    kept = sorted(p.name.removesuffix(".db.gz") for p in (DOCS / "data").glob("*.db.gz"))
    for page in args.pages or kept:
        if page not in kept:
            raise SystemExit(f"{page}: no database kept in {DOCS / 'data'}")
        rebuild(page)
        print(f"rebuilt {page}")


if __name__ == "__main__":
    main()
