"""scripts/keep_in_progress: a running sweep's database kept as a consistent gzip copy."""

from __future__ import annotations

import gzip
import sqlite3

import pytest

from scripts.keep_in_progress import keep, main


def _db(path, statuses):
    c = sqlite3.connect(path)
    c.execute("CREATE TABLE runs (id INTEGER PRIMARY KEY, status TEXT NOT NULL)")
    c.executemany("INSERT INTO runs (status) VALUES (?)", [(s,) for s in statuses])
    c.commit()
    return c


def test_the_copy_holds_the_finished_cells_and_reads_back(tmp_path):
    live = _db(tmp_path / "results.db", ["finished", "finished", "failed"])  # still open
    out, finished = keep("zoo", tmp_path / "results.db", tmp_path)
    live.close()
    assert (out.name, finished) == ("zoo.db.gz", 2)
    (tmp_path / "back.db").write_bytes(gzip.decompress(out.read_bytes()))
    rows = sqlite3.connect(tmp_path / "back.db").execute("SELECT status FROM runs").fetchall()
    assert [r[0] for r in rows] == ["finished", "finished", "failed"]
    again, _ = keep("zoo", tmp_path / "results.db", tmp_path)
    assert again.read_bytes() == out.read_bytes()  # no timestamp or name in the gzip header
    assert not list(tmp_path.glob("*.part"))


@pytest.mark.parametrize("name", ["../zoo", "a/b", ".hidden", ""])
def test_a_name_that_leaves_the_folder_is_refused(tmp_path, name):
    _db(tmp_path / "results.db", ["finished"]).close()
    with pytest.raises(ValueError, match="one file name"):
        keep(name, tmp_path / "results.db", tmp_path)


def test_a_missing_database_is_one_line_and_a_non_zero_exit(tmp_path, capsys):
    assert main(["zoo", str(tmp_path / "none.db")]) == 1
    assert capsys.readouterr().err.count("\n") == 1


def test_without_a_published_database_only_the_new_cells_are_kept(tmp_path):
    c = _db(tmp_path / "results.db", ["finished", "finished", "finished"])
    c.execute("ALTER TABLE runs ADD COLUMN run_id TEXT")
    c.executemany("UPDATE runs SET run_id = ? WHERE id = ?", [("a", 1), ("b", 2), ("c", 3)])
    c.commit()
    (tmp_path / "page.db").write_bytes((tmp_path / "results.db").read_bytes())
    published = sqlite3.connect(tmp_path / "page.db")
    published.execute("DELETE FROM runs WHERE run_id = 'c'")  # the page has a and b
    published.commit()
    published.close()
    (tmp_path / "page.db.gz").write_bytes(gzip.compress((tmp_path / "page.db").read_bytes()))
    out, finished = keep("zoo", tmp_path / "results.db", tmp_path, tmp_path / "page.db.gz")
    (tmp_path / "back.db").write_bytes(gzip.decompress(out.read_bytes()))
    rows = sqlite3.connect(tmp_path / "back.db").execute("SELECT run_id FROM runs").fetchall()
    assert (finished, rows) == (1, [("c",)])
    c.close()
