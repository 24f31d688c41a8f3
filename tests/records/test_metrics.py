"""Typed metrics: every shape a record's metrics were written in reads into its sections, and a
run's metrics write back exactly as the runner wrote them before they were typed."""

from __future__ import annotations

import gzip
import json
import sqlite3
from pathlib import Path

import pytest

from backdoorlab.records.metrics import Metrics

KEPT = sorted((Path(__file__).parents[2] / "docs" / "results" / "data").glob("*.db.gz"))

REPAIRED_RUN = {
    "acc": 97.5, "asr": 2.0, "ra": 95.0, "der": 0.985,
    "infected": {"cache_key": "k", "from_cache": True,
                 "metrics": {"acc": 98.0, "asr": 99.0, "ra": 1.0}},
    "fp_pruned": 12, "fp_layer": "groups.1", "fp_steps": [{"clean_acc": 98.0}],
    "aft_curve": [{"step": 0, "acc": 98.0, "asr": 99.0}],
}  # fmt: skip


def test_a_repaired_run_reads_into_sections_and_writes_back_unchanged():
    m = Metrics.from_dict(REPAIRED_RUN)
    assert (m.acc, m.asr, m.ra, m.der) == (97.5, 2.0, 95.0, 0.985)
    assert m.before == Metrics(acc=98.0, asr=99.0, ra=1.0)
    assert m.stage == {"cache_key": "k", "from_cache": True}
    assert m.defense == {"fp_pruned": 12, "fp_layer": "groups.1", "fp_steps": [{"clean_acc": 98.0}]}
    assert m.aft_curve == REPAIRED_RUN["aft_curve"]
    assert m.to_dict() == REPAIRED_RUN
    # what a runs table lists: DER and the defense's scalars, by name; lists left out
    assert m.scalars() == {"der": 0.985, "fp_layer": "groups.1", "fp_pruned": 12}
    assert (m.named("asr"), m.named("fp_pruned"), m.named("nothing")) == (2.0, 12, None)
    assert m.has("fp_pruned") and m.has("ra") and not m.has("nothing")


def test_a_user_repair_written_with_before_reads_as_a_run_does():
    old = {"acc": 98.0, "asr": 3.0, "ra": 90.0, "before": {"acc": 98.5, "asr": 99.0, "ra": 1.0}}
    m = Metrics.from_dict(old, "repair")
    assert m.before == Metrics(acc=98.5, asr=99.0, ra=1.0) and m.defense == {}


def test_a_scan_record_keeps_its_verdict_flat():
    verdict = {"score": 3.2, "p_value": 0.4, "infected": False, "target": None}
    m = Metrics.from_dict(verdict, "scan")
    assert m.verdict == verdict and m.before is None and m.to_dict() == verdict


@pytest.mark.parametrize("db", KEPT, ids=[p.name for p in KEPT])
def test_every_published_cell_round_trips(db, tmp_path):
    plain = tmp_path / "results.db"
    plain.write_bytes(gzip.decompress(db.read_bytes()))
    with sqlite3.connect(plain) as con:
        rows = [json.loads(r) for (r,) in con.execute("SELECT metrics_json FROM runs")]
    assert rows
    for raw in rows:
        assert Metrics.from_dict(raw).to_dict() == raw
