import pytest

from backdoorlab.records.store import COLUMNS, ResultStore


def record(i):
    r = {c: None for c in COLUMNS}
    r.update(
        run_id=f"r{i}",
        created="now",
        name="n",
        config_hash="h",
        dataset="d",
        model="m",
        attack="a",
        defense="none",
        seed=i,
        acc=90.0 + i,
        status="finished",
        config_json={"seed": i},
        metrics_json={"acc": 90.0 + i},
        timings_json={},
        versions_json={},
    )
    return r


def test_rows_round_trip_and_filter(tmp_path):
    store = ResultStore(tmp_path / "sub" / "results.db")
    store.add(record(1))
    store.add(record(2))
    rows = store.rows()
    assert [r["seed"] for r in rows] == [1, 2] and rows[1]["acc"] == 92.0
    assert rows[0]["config_json"] == '{"seed": 1}'
    assert [r["run_id"] for r in store.rows(seed=2)] == ["r2"]
    with pytest.raises(ValueError, match="unknown columns"):
        store.rows(bogus=1)


def test_duplicate_run_id_is_rejected_and_leaves_one_row(tmp_path):
    import sqlite3

    store = ResultStore(tmp_path / "results.db")
    store.add(record(1))
    with pytest.raises(sqlite3.IntegrityError):
        store.add(record(1))
    assert len(store.rows()) == 1


def test_a_database_written_before_a_column_gains_it_and_keeps_its_rows(tmp_path):
    """Databases kept beside the pages predate `poison_json`: opening one adds the column."""
    import sqlite3

    path = tmp_path / "results.db"
    ResultStore(path).add(record(1))
    with sqlite3.connect(path) as con:  # as a database written before the column was
        con.execute("ALTER TABLE runs DROP COLUMN poison_json")
    store = ResultStore(path)
    store.add({**record(2), "poison_json": {"count": 80, "control": "data"}})
    old, new = store.rows()
    assert old["run_id"] == "r1" and old["poison_json"] is None
    assert new["poison_json"] == '{"control": "data", "count": 80}'
