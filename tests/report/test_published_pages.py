"""The published pages regenerate byte for byte: each results database kept beside its page
(docs/results/data/<page>.db.gz, written by `make results-pages`) gives the page's Markdown and
CSV tables again, word for word, with its notes. Trigger grids, copied from run folders that are
not kept, are the page's own copies, and so are the numbers of analyses that load models."""

from __future__ import annotations

import gzip
import re
import shutil
import sqlite3
from pathlib import Path

import pytest

from backdoorlab.report import report

DOCS = Path(__file__).resolve().parents[2] / "docs" / "results"
STORED = sorted((DOCS / "data").glob("*.db.gz"))


def test_pages_are_kept_with_their_databases():
    assert len(STORED) >= 5
    for db in STORED:
        page = db.name.removesuffix(".db.gz")
        assert (DOCS / f"{page}.md").is_file() and (DOCS / "notes" / f"{page}.md").is_file()


@pytest.mark.parametrize("db", STORED, ids=[p.name.removesuffix(".db.gz") for p in STORED])
def test_a_page_regenerates_from_its_database(db, tmp_path):
    page = db.name.removesuffix(".db.gz")
    (tmp_path / "results.db").write_bytes(gzip.decompress(db.read_bytes()))
    # from the database alone, whatever run folders this machine still has where the cells ran
    with sqlite3.connect(tmp_path / "results.db") as con:
        con.execute("UPDATE runs SET out_dir = NULL")
    con.close()
    # trigger grids are copied from run folders, which are not kept: the page's own copies stand
    # in for them (a figure drawn from the database is drawn again over its copy)
    for png in DOCS.glob(f"{page}-*.png"):
        (tmp_path / png.name).write_bytes(png.read_bytes())
    # so are the numbers of an analysis that loads models (its folder beside the page says which
    # cells and options it read; the report refuses them for others)
    for folder in DOCS.glob(f"{page}-*/"):
        shutil.copytree(folder, tmp_path / folder.name)
    published = (DOCS / f"{page}.md").read_text()
    command = re.search(r"^Written by `(.+?)`;", published, re.M)
    assert command, f"{page}.md does not name the command that wrote it"
    out, _ = report(tmp_path / "results.db", tmp_path / page, command=command.group(1),
                    notes=DOCS / "notes" / f"{page}.md")  # fmt: skip
    assert out.read_text() == published
    for csv in sorted(tmp_path.glob(f"{page}-*.csv")):
        assert csv.read_bytes() == (DOCS / csv.name).read_bytes(), csv.name
