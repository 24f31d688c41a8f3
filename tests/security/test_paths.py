"""Nothing is written outside the folder a user names, and nothing a user wrote is deleted."""

from __future__ import annotations

import json
import sqlite3

import pytest
import yaml

from backdoorlab.cli import main
from backdoorlab.errors import ConfigError
from backdoorlab.experiment.runner import run
from backdoorlab.paths import check_name, inside, slug
from backdoorlab.records.store import ResultStore
from backdoorlab.report import report


def _files(root) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.fixture
def config_file(tiny_config, tmp_path):
    tiny_config["train"]["epochs"] = 1
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_config))
    return path


def test_out_refuses_a_folder_it_did_not_write(config_file, tmp_path, capsys):
    out = tmp_path / "mine"
    (out / "sub").mkdir(parents=True)
    (out / "notes.txt").write_text("my notes")
    assert main(["run", str(config_file), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "not a backdoorlab run folder" in err and len(err.splitlines()) == 1, err
    assert (out / "notes.txt").read_text() == "my notes" and (out / "sub").is_dir()
    assert not (tmp_path / "results.db").exists()  # nothing half-written
    with pytest.raises(ConfigError):  # the Python API refuses the same way
        run(str(config_file), out=out, progress=False)
    assert (out / "notes.txt").read_text() == "my notes"


def test_an_earlier_run_folder_is_replaced_only_with_overwrite(config_file, tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["run", str(config_file), "--out", str(out), "--quiet"]) == 0
    first = json.loads((out / "result.json").read_text())["run_id"]
    assert main(["run", str(config_file), "--out", str(out), "--quiet"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert json.loads((out / "result.json").read_text())["run_id"] == first
    argv = ["run", str(config_file), "--out", str(out), "--quiet", "--overwrite"]
    assert main(argv) == 0
    assert json.loads((out / "result.json").read_text())["run_id"] != first
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["run", str(config_file), "--out", str(empty), "--quiet"]) == 0


@pytest.mark.parametrize("name", ["../../escape", "..", ".", "a/b", ".hidden", "x[/x]", ""])
def test_a_name_that_would_leave_its_folder_is_one_line(config_file, tmp_path, capsys, name):
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    before = _files(tmp_path)
    assert main(["run", str(config_file), "--set", f"name={name}", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error:"), err
    assert _files(tmp_path) == before


def test_slugs_are_valid_names_and_inside_is_strict(tmp_path):
    for text in ["x y", "x+y", ".", "..", "../../up", "a/b", "", "é", "-" * 500]:
        check_name(slug(text), "slug")
        check_name(slug(text, key=text), "slug")
        assert inside(tmp_path, slug(text)).parent == tmp_path.resolve()
    assert slug("x y", key="1") != slug("x+y", key="2")
    with pytest.raises(ConfigError, match="outside"):
        inside(tmp_path, "..", "x")


def _crafted_db(path, sweep: str, rid: str) -> None:
    store = ResultStore(path)
    store.put_sweep(sweep, {"name": sweep, "axes": {}, "reports": {rid: {"kind": "grid"}}})


@pytest.mark.parametrize(
    "sweep,rid", [("ok", "../../../evil"), ("../../evil", "t"), ("ok", "/tmp/evil")]
)
def test_a_crafted_results_db_cannot_write_outside_the_report_folder(tmp_path, sweep, rid):
    db = tmp_path / "sweep" / "results.db"
    _crafted_db(db, sweep, rid)
    before = _files(tmp_path)
    with pytest.raises(ConfigError, match="cannot be a file name"):
        report(db)
    assert _files(tmp_path) == before


def test_a_trigger_grid_is_not_copied_to_a_name_from_the_database(config_file, tmp_path):
    """A `runs` report names each copied trigger grid after its cell's label, which comes from
    the database: a hostile label stays a file name inside the report's folder."""
    run_dir = tmp_path / "runs" / "r"
    run(str(config_file), out=run_dir, progress=False)
    row = ResultStore(tmp_path / "runs" / "results.db").rows()[0]
    store = ResultStore(tmp_path / "crafted.db")
    spec = {"name": "s", "axes": {}, "reports": {"r": {"kind": "runs"}}}
    store.put_sweep("s", spec)
    store.add({**row, "run_id": "x", "sweep": "s", "cell": "c" * 20,
               "axes_json": {"cell": "../../escaped"}})  # fmt: skip
    before = _files(tmp_path)
    _, [part] = report(store.path, tmp_path / "out" / "page")
    [(_, png)] = part.figures
    assert png.parent == (tmp_path / "out").resolve()
    assert png.name.startswith("page-r-") and ".." not in png.name
    assert all(f.startswith("out") for f in _files(tmp_path) - before)


def test_a_results_db_row_is_sql_data_not_code(tmp_path):
    db = tmp_path / "results.db"
    _crafted_db(db, "ok", "t")
    with sqlite3.connect(db) as con:  # a hostile sweep name is stored and read back verbatim
        con.execute("UPDATE sweeps SET name = ?", ("x'; DROP TABLE runs; --",))
    assert list(ResultStore(db).sweeps()) == ["x'; DROP TABLE runs; --"]
    with pytest.raises(ConfigError, match="cannot be a file name"):
        report(db)
