"""The published pages regenerate byte for byte: each results database kept beside its page
(docs/results/data/<page>.db.gz, written by `make results-pages`) gives the page's Markdown and
CSV tables again, word for word, with its notes, from the database alone (scripts/rebuild_pages).
Trigger grids, copied from run folders that are not kept, are the page's own copies, and so are
the numbers of analyses that load models."""

from __future__ import annotations

import pytest

from scripts.rebuild_pages import DOCS, kept_pages, rebuild

STORED = kept_pages()


def test_pages_are_kept_with_their_databases():
    assert len(STORED) >= 5
    for page in STORED:
        assert (DOCS / f"{page}.md").is_file() and (DOCS / "notes" / f"{page}.md").is_file()


@pytest.mark.parametrize("page", STORED)
def test_a_page_regenerates_from_its_database(page, tmp_path):
    out = rebuild(page, tmp_path, formats=("md",))
    assert out.read_text() == (DOCS / f"{page}.md").read_text()
    for csv in sorted(tmp_path.glob(f"{page}-*.csv")):
        assert csv.read_bytes() == (DOCS / csv.name).read_bytes(), csv.name
