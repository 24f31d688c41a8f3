"""The `repairs` report kind: the share of a zoo's infected models each defense repairs, per
family, and what it costs the benign models, from hand-made cells."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from backdoorlab.errors import ConfigError
from backdoorlab.records.metrics import Metrics
from backdoorlab.report.cells import Row
from backdoorlab.report.repairs import repair_rows, repaired_members, repairs_part


def cell(model, defense, attack, before, after, der=None, pattern=None):
    config = {"attack": {"name": attack, **({"pattern": pattern} if pattern else {})},
              "defense": {"name": defense}}  # fmt: skip
    metrics = {"acc": after[0], "asr": after[1], "der": der,
               "infected": {"metrics": {"acc": before[0], "asr": before[1]}}}  # fmt: skip
    return Row(
        f"{model}-{defense}",
        {"model": model, "defense": defense},
        config,
        Metrics.from_dict(metrics),
    )


CELLS = [
    cell("b1", "aft", "badnets", (99.0, 100.0), (98.0, 2.0), 0.985),  # repaired
    cell("b2", "aft", "badnets", (99.0, 100.0), (92.0, 1.0), 0.96),  # too much ACC lost
    cell("x1", "aft", "pattern", (98.0, 99.0), (97.5, 50.0), 0.745, "trig/cross.png"),
    cell("w1", "aft", "badnets", (99.0, 3.0), (99.0, 2.0)),  # the backdoor never planted
    cell("n1", "aft", "none", (99.0, None), (97.5, None)),
    cell("n2", "aft", "none", (98.0, None), (98.0, None)),
    cell("b1", "auto", "badnets", (99.0, 100.0), (98.5, 0.5), 0.995),
    cell("n1", "auto", "none", (99.0, None), (99.0, None)),
    Row("plain", {"model": "p"}, {"attack": {"name": "none"}}, Metrics(acc=99.0)),  # no repair
]


def test_the_share_repaired_counts_asr_and_acc_drop_together():
    members = repaired_members({"group": ["attack.name", "attack.pattern"]}, CELLS)
    assert len(members) == 8 and {m.family for m in members} == {"badnets", "pattern / cross", None}
    table, costs, failed = repair_rows(members, planted=50, asr_max=10, drop_max=5)
    rows = {(r[0], r[1]): r for r in table[1:]}
    assert rows[("aft", "all attacks")][2:] == ["3", "2.83", "17.67", "0.90", "33.3", "6.1-79.2"]
    assert rows[("aft", "badnets")][6] == "50.0" and rows[("aft", "pattern / cross")][6] == "0.0"
    assert rows[("auto", "all attacks")][6] == "100.0"
    assert costs[1:] == [["aft", "2", "0.75", "1.50", "50.0"], ["auto", "1", "0.00", "0.00", "0.0"]]
    assert [m.model for m in failed] == ["w1"]


def test_the_kind_writes_its_table_and_names_what_did_not_plant(tmp_path):
    part = repairs_part("zoo", {"kind": "repairs"}, {}, CELLS, tmp_path / "page")
    assert part.table[0][0] == "defense" and "w1 (ASR 3.00)" in part.notes[-1]
    assert Path(tmp_path / "page-zoo.csv").read_text().startswith("defense,attack,models")
    entry = {"kind": "repairs", "models": "benign"}
    benign = repairs_part("cost", entry, {}, CELLS, tmp_path / "p")
    assert benign.table[0][:2] == ["defense", "benign models"]
    with pytest.raises(ConfigError, match="infected, benign or evidence"):
        repairs_part("x", {"kind": "repairs", "models": "all"}, {}, CELLS, tmp_path / "p")


def scanned(model, attack, target, before, after, scan, rescan, steps):
    row = cell(model, "auto", attack, before, after)
    row.config["attack"]["target"] = target
    verdict = [{"infected": f is not None, "target": f, "score": z, "threshold": 10.0}
               for f, z in (scan, rescan)]  # fmt: skip
    row.metrics = replace(row.metrics, scan_before=verdict[0], scan_after=verdict[1],
                          steps=[{"defense": d} for d in steps])  # fmt: skip
    return row


def test_the_evidence_table_sets_the_scan_against_the_truth(tmp_path):
    cells = [
        scanned("b1", "badnets", 3, (99.0, 100.0), (98.0, 1.0), (3, 40.0), (None, 4.0), ["nc"]),
        scanned("b2", "badnets", 0, (99.0, 100.0), (96.0, 90.0), (5, 12.0), (None, 3.0), ["nc"]),
        scanned("x1", "pattern", 1, (98.0, 99.0), (98.0, 99.0), (None, 6.0), (None, 6.0), []),
        scanned("w1", "badnets", 2, (99.0, 3.0), (99.0, 3.0), (None, 2.0), (None, 2.0), []),
        scanned("n1", "none", None, (99.0, None), (99.0, None), (None, 5.0), (None, 5.0), []),
        cell("n2", "aft", "none", (98.0, None), (98.0, None)),  # no scan recorded: left out
    ]
    part = repairs_part("ev", {"kind": "repairs", "models": "evidence"}, {}, cells, tmp_path / "p")
    assert [r[0] for r in part.table[1:]] == ["b1", "b2", "x1", "n1"]  # w1 did not plant
    b2 = part.table[2]
    assert b2[1:5] == ["0", "class 5 (12.0 / 10.0)", "nc", "clean (3.0 / 10.0)"]
    assert b2[5:] == ["3.00", "100.00", "90.00", "no"] and part.table[4][-1] == "-"
    assert part.notes[0] == (
        "The first scan flagged 2 of 3 infected models (1 at their true target) and 0 of 1 "
        "benign ones; 1 of the infected were repaired."
    )
    assert Path(tmp_path / "p-ev.csv").read_text().startswith("model,target,scan before")


def test_the_evidence_table_shows_the_smallest_trigger_where_a_repair_searched_again(tmp_path):
    fixed = scanned("b1", "badnets", 3, (99.0, 100.0), (98.0, 1.0), (3, 40.0), (None, 4.0), ["nc"])
    kept = scanned("b2", "badnets", 0, (99.0, 100.0), (96.0, 90.0), (0, 12.0), (None, 3.0), ["nc"])
    for row, after in ((fixed, 51.8), (kept, 1.2)):
        norms = {"reversed_trigger_norm_before": 0.9, "reversed_trigger_norm_after": after}
        row.metrics = replace(row.metrics, held_out=norms)
    entry = {"kind": "repairs", "models": "evidence"}
    part = repairs_part("ev", entry, {}, [fixed, kept], tmp_path / "p")
    assert part.table[0][-1] == "smallest trigger"
    assert [r[-1] for r in part.table[1:]] == ["0.9 -> 51.8", "0.9 -> 1.2"]
    assert part.notes[-1].startswith("Smallest trigger: the mask L1 norm")
    older = [scanned("b3", "badnets", 3, (99.0, 100.0), (98.0, 1.0), (3, 40.0), (None, 4.0), [])]
    assert repairs_part("ev", entry, {}, older, tmp_path / "q").table[0][-1] == "repaired"
