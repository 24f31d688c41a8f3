"""The run record: every kind round-trips through result.json, old files still load, and only
kinds with a config make a results-database row."""

from __future__ import annotations

import json

import pytest

from backdoorlab.errors import ConfigError
from backdoorlab.fingerprint import fingerprint
from backdoorlab.records.metrics import Metrics
from backdoorlab.records.record import RunRecord, read_record, read_run

CONFIG = {"name": "x", "seed": 1, "dataset": {"name": "d"}, "model": {"name": "m"},
          "attack": {"name": "a"}, "defense": {"name": "f"}}  # fmt: skip


@pytest.mark.parametrize(
    "record",
    [
        RunRecord(
            "run",
            Metrics(acc=99.0, asr=1.0),
            run_id="r1",
            name="x",
            created="t",
            config=CONFIG,
            config_hash="h",
            timings={"total_s": 1.0},
            extra={"poison": {"count": 3}, "history": []},
        ),  # fmt: skip
        RunRecord(
            "repair",
            Metrics(acc=98.0, before=Metrics(acc=99.0, asr=97.0), der=0.98),
            run_id="r2",
            config=CONFIG,
            config_hash=fingerprint(CONFIG),
            extra={"repair": {"defense": "auto"}},
        ),  # fmt: skip
        RunRecord("evaluate", Metrics(acc=97.0), extra={"source": {"data": "clean/"}}),
        RunRecord(
            "scan",
            Metrics(verdict={"score": 3.2, "infected": False}),
            extra={"details": "scan.json"},
        ),
    ],
)
def test_every_kind_round_trips_through_result_json(record, tmp_path):
    record.save(tmp_path)
    again = read_record(tmp_path)
    assert again == record
    raw = json.loads((tmp_path / "result.json").read_text())
    assert raw["kind"] == record.kind and raw["metrics"] == record.metrics.to_dict()
    assert all(raw[k] == v for k, v in record.extra.items())  # sections stay at the top


def test_files_written_before_records_had_a_kind_still_load(tmp_path):
    (tmp_path / "run").mkdir()
    old_run = {"run_id": "r", "name": "x", "created": "t", "config_hash": "h", "metrics": {},
               "timings": {}, "versions": {}, "config": CONFIG, "poison": {"count": 1}}  # fmt: skip
    (tmp_path / "run" / "result.json").write_text(json.dumps(old_run))
    assert read_record(tmp_path / "run").kind == "run"
    record = read_run(tmp_path / "run")
    assert (record.run_id, record.config, record.poison) == ("r", CONFIG, {"count": 1})
    (tmp_path / "eval").mkdir()
    old_eval = {"metrics": {"acc": 90.0}, "source": {"data": "x"}}  # before: no kind, no config
    (tmp_path / "eval" / "result.json").write_text(json.dumps(old_eval))
    assert read_record(tmp_path / "eval").kind == "evaluate"
    assert read_record(tmp_path / "eval").metrics.acc == 90.0


def test_rows_come_from_records_with_a_config_only(tmp_path):
    run = RunRecord("run", Metrics(acc=99.0, asr=2.0, ra=97.0), run_id="r", created="t",
                    config=CONFIG, config_hash="h")  # fmt: skip
    row = run.to_row(tmp_path)
    assert (row["dataset"], row["attack"], row["defense"], row["seed"]) == ("d", "a", "f", 1)
    assert (row["acc"], row["asr"], row["out_dir"]) == (99.0, 2.0, str(tmp_path))
    with pytest.raises(ConfigError, match="a scan record has no config"):
        RunRecord("scan", Metrics(verdict={})).to_row(None)
    RunRecord("scan", Metrics(verdict={})).save(tmp_path)
    with pytest.raises(ConfigError, match="not a run record \\(a scan\\)"):
        read_run(tmp_path)
    with pytest.raises(ConfigError, match="kind is one of run, repair, evaluate, scan"):
        RunRecord("other", Metrics())
