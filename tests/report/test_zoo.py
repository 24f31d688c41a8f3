"""The `detect` report kind: TDC metrics as scikit-learn computes them; a digits zoo end to end."""

from __future__ import annotations

import csv
import sqlite3
from pathlib import Path

import pytest
import yaml
from sklearn.metrics import average_precision_score, roc_auc_score

from backdoorlab.experiment.sweep import sweep
from backdoorlab.report import report
from backdoorlab.report.zoo import (
    CONFOUND_HEADER,
    HEADER,
    Member,
    confound_rows,
    detection_rows,
    split,
)

REPO = Path(__file__).resolve().parents[2]
ZOO = REPO / "configs" / "sweeps" / "digits-zoo.yaml"


def _member(name, group, target, score, top, suspects=(), asr=100.0, seconds=1.0, features=None):
    scores = [0.0] * 10
    scores[top] = score
    d = {"score": score, "scores": scores, "suspects": list(suspects), "seconds": seconds}
    return Member(name, group, target, None if group is None else asr, {"x": d}, features)


# fixed numbers: benign scores and infected scores overlap, so every metric is informative
BENIGN = [0.5, 1.2, 2.5, 0.1, 3.0, 1.9]
INFECTED = [
    ("a", 4.0, 3, 3),
    ("a", 2.2, 3, 5),
    ("b", 6.0, 1, 1),
    ("b", 0.9, 2, 7),
    ("b", 5.5, 0, 0),
]


def zoo() -> list[Member]:
    benign = [
        _member(f"b{i}", None, 0, s, i % 10, [1] if s > 2 else []) for i, s in enumerate(BENIGN)
    ]
    infected = [
        _member(f"i{i}", g, t, s, top, [top] if s > 2 else [])
        for i, (g, s, t, top) in enumerate(INFECTED)
    ]
    failed = _member("weak", "a", 4, 9.0, 4, [4], asr=12.0)  # did not plant: set apart
    return [*benign, *infected, failed]


def test_metrics_match_scikit_learn_on_fixed_numbers():
    benign, infected, _ = split(zoo(), planted=50)
    rows = detection_rows(benign, infected, ["x"], ["a", "b"])
    assert rows[0] == HEADER
    table = {r[1]: dict(zip(HEADER, r, strict=True)) for r in rows[1:]}
    labels = [0] * len(BENIGN) + [1] * len(INFECTED)
    scores = BENIGN + [s for _, s, _, _ in INFECTED]
    every = table["all attacks"]
    assert float(every["AUROC"]) == pytest.approx(roc_auc_score(labels, scores), abs=5e-4)
    assert float(every["AUPR"]) == pytest.approx(average_precision_score(labels, scores), abs=5e-4)
    # 95% of the infected need the threshold at 0.9, the lowest infected score; 4 of the 6 benign
    # scores (1.2, 2.5, 3.0, 1.9) reach it
    assert every["FPR@95TPR"] == f"{4 / 6:.3f}"
    assert every["target acc %"] == "60.0"  # tops 3, 5, 1, 7, 0 against targets 3, 3, 1, 2, 0
    assert every["flagged benign %"] == "33.3" and every["flagged infected %"] == "80.0"
    assert (every["benign"], every["infected"]) == ("6", "5")  # "weak" (ASR 12) is not scored
    only_a = [0] * len(BENIGN) + [1, 1]
    assert float(table["a"]["AUROC"]) == pytest.approx(
        roc_auc_score(only_a, BENIGN + [4.0, 2.2]), abs=5e-4
    )
    assert table["a"]["target acc %"] == "50.0" and table["b"]["infected"] == "3"
    # intervals hold their point estimates; Wilson's for 2 of 6 benign flagged is 9.7-70.0
    low, high = map(float, every["AUROC 95% CI"].split("-"))
    assert low <= float(every["AUROC"]) <= high and 0 < low < high <= 1
    assert every["flagged benign 95% CI"] == "9.7-70.0"
    low, high = map(float, every["target acc 95% CI"].split("-"))
    assert low < 60.0 < high


def test_confound_rows_show_what_a_feature_alone_separates():
    benign = [
        _member(f"b{i}", None, 0, 1.0, 0, features={"width": w, "seed": i})
        for i, w in enumerate([24, 32, 48, 24])
    ]
    infected = [
        _member(f"i{i}", "a", 3, 2.0, 3, features={"width": w, "seed": 100 + i})
        for i, w in enumerate([32, 24, 48, 32])
    ]
    rows = confound_rows(benign, infected)
    assert rows[0] == CONFOUND_HEADER
    table = {r[0]: dict(zip(CONFOUND_HEADER, r, strict=True)) for r in rows[1:]}
    # width: infected 32 32 24 48 against benign 24 32 48 24 -> (8 + 2.5 * ...) / 16
    expected = roc_auc_score([0] * 4 + [1] * 4, [24, 32, 48, 24, 32, 24, 48, 32])
    assert float(table["width"]["AUROC"]) == pytest.approx(expected, abs=5e-4)
    assert table["width"]["benign values"] == "24 32 48"
    assert table["seed"]["AUROC"] == "1.000"  # seeds 0-3 against 100-103: a perfect confound
    assert table["seed"]["AUROC 95% CI"] == "1.000-1.000"


def test_split_sets_apart_attacked_models_whose_backdoor_did_not_take():
    benign, infected, failed = split(zoo(), planted=50)
    assert len(benign) == 6 and len(infected) == 5 and [m.name for m in failed] == ["weak"]


def _small_zoo(tmp_path: Path, eps: float) -> Path:
    """digits-zoo with three benign and three infected models at 6 epochs and a 3-step NC."""
    spec = yaml.safe_load(ZOO.read_text())
    spec["base"] = str(ZOO.parent / spec["base"])
    spec["set"].update({"train.epochs": 6})
    spec["set"]["detect"] = {"adv-labels": {"eps": eps}, "nc": {"steps": 3, "batches_per_step": 1}}
    keep = ["benign-1", "benign-2", "benign-3", "badnets-1", "badnets-2", "blended-1"]
    spec["axes"]["model"] = {k: spec["axes"]["model"][k] for k in keep}
    path = tmp_path / f"zoo-{eps}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_a_digits_zoo_trains_once_scores_each_model_and_reports(tmp_path):
    out = tmp_path / "zoo"
    first = sweep(_small_zoo(tmp_path, 0.1), out, cpus=1, progress=False, say=lambda _: None)
    assert first.ran == 6 and not first.failures
    # new detector options make new cells, but the models come from the stage cache
    again = sweep(_small_zoo(tmp_path, 0.2), out, cpus=1, progress=False, say=lambda _: None)
    assert again.ran == 6 and again.skipped == 0
    assert len(list((out / "cache" / "infected").iterdir())) == 6
    with sqlite3.connect(out / "results.db") as con:
        accs = {}
        for name, acc in con.execute("SELECT name, acc FROM runs"):
            accs.setdefault(name, set()).add(acc)
    assert len(accs) == 6 and all(len(v) == 1 for v in accs.values())  # the same models

    path, sections = report(out / "results.db", tmp_path / "page", sweep="digits-zoo")
    by_id = {part.id: part for part in sections}
    section, confounds = by_id["detection"], by_id["confounds"]
    assert [r[0] for r in confounds.table[1:]] == ["seed", "acc"]
    assert confounds.table[1][1:4] == ["3", "3", "1.000"]  # benign seeds 1-3, infected 5-7
    assert [r[:2] for r in section.table[1:4]] == [
        ["adv-labels", "all attacks"],
        ["adv-labels", "badnets"],
        ["adv-labels", "blended"],
    ]
    assert section.figures[0][1].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = path.read_text()
    assert "| nc | all attacks | 3 | 3 |" in text and "AUROC" in text
    with (tmp_path / "page-detection-models.csv").open() as f:
        models = list(csv.DictReader(f))
    assert len(models) == 2 * 6 and {m["detector"] for m in models} == {"adv-labels", "nc"}
    assert {m["target"] for m in models if m["attack"] == "benign"} == {""}
    assert {m["target"] for m in models if m["model"] == "badnets-2"} == {"7"}
    html, _ = report(out / "results.db", tmp_path / "page", sweep="digits-zoo", fmt="html")
    assert "<th>FPR@95TPR</th>" in html.read_text()


def test_a_zoo_s_family_can_join_several_keys_and_shows_trigger_files_by_name():
    from backdoorlab.errors import ConfigError
    from backdoorlab.records.metrics import Metrics
    from backdoorlab.report.cells import Row
    from backdoorlab.report.kinds import zoo_members

    def row(name, attack, **extra):
        config = {"attack": {"name": attack, "target": 2, **extra}, "model": {"name": "lenet"}}
        detect = {"mm-bd": {"scores": [0.0] * 10, "score": 1.0, "suspects": [], "seconds": 1}}
        return Row(name, {"model": name}, config, Metrics(asr=99.0, detect=detect))

    cells = [
        row("a", "pattern", pattern="configs/results/triggers/cross.png"),
        row("b", "badnets"),
        row("c", "none"),
    ]
    entry = {"kind": "detect", "group": ["attack.name", "attack.pattern", "model.name"]}
    groups = [m.group for m in zoo_members(entry, cells)]
    assert groups == ["pattern / cross / lenet", "badnets / lenet", None]
    assert [m.group for m in zoo_members({"kind": "detect"}, cells)] == ["pattern", "badnets", None]
    with pytest.raises(ConfigError, match="group keys"):
        zoo_members({"kind": "detect", "group": ["attack.nope"]}, cells)


def test_recalibrate_rows_come_from_the_kept_values_and_match_the_scan_s_own_settings(tmp_path):
    from dataclasses import replace

    from backdoorlab.errors import ConfigError
    from backdoorlab.report.kinds import _detect
    from scripts.rebuild_pages import kept_cells

    cells = kept_cells("detection-dev")
    own = cells[0].config["calibrate"]  # the settings the zoo's scans ran at
    own = {k: v for k, v in own.items() if k != "references"}
    l2 = {**own, "detectors": ["adv-labels-l2"]}
    entry = {"kind": "detect", "recalibrate": {"same": own, "l2": l2}}
    part = _detect("detection", entry, {}, cells, tmp_path / "page")
    table = {(r[0], r[1]): r for r in part.table[1:]}
    for group in ("all attacks", "badnets", "blended"):
        # every column but the seconds (the recalibrated row counts its own probes only)
        assert table[("same", group)][1:-1] == table[("calibrated", group)][1:-1]
    assert table[("l2", "all attacks")][4:] != table[("calibrated", "all attacks")][4:]
    bare = [replace(c, metrics=replace(c.metrics, detect={"mm-bd": c.metrics.detect["mm-bd"]}))
            for c in cells[:1]]  # fmt: skip
    with pytest.raises(ConfigError, match=r"detection: .*benign-d1: recalibrate: the record keeps"):
        _detect("detection", entry, {}, bare, tmp_path / "page")
    with pytest.raises(ConfigError, match="references' recipe cannot change"):
        _detect("detection", {"kind": "detect", "recalibrate": {"x": {"references": {}}}},
                {}, cells, tmp_path / "page")  # fmt: skip


def test_the_choice_rule_gives_the_published_pick_and_leaves_out_attacks_that_did_not_plant():
    from scripts.calibration_choices import choice_table, members

    kept = [members(zoo) for zoo in ("detection-dev", "detection-dev-2")]
    rows, pick = choice_table(
        [m for b, _, _ in kept for m in b], [m for _, i, _ in kept for m in i]
    )
    # the pick written into configs/results/detection-dev-2.yaml, from the kept values alone
    assert (pick.detectors, pick.evidence, pick.floor) == (("adv-labels-l2", "mm-bd"), "values", 10)
    assert len(rows) == 2 + 21  # header, rule, 7 subsets of 3 probes x 3 evidences
    assert "| adv-labels-l2 + mm-bd | values | 1.000 | 16/16 | 6/16 |" in "\n".join(rows)
    benign, infected, failed = members("detection-heldout")
    assert [m.name for m in failed] == ["blended-lenet-1"]  # ASR 2.50: as on the page
    assert (len(benign), len(infected)) == (24, 35)


def test_the_settings_report_scores_every_setting_and_words_its_pick_by_the_zoo_s_role(tmp_path):
    from backdoorlab.errors import ConfigError
    from backdoorlab.report.kinds import _settings
    from scripts.rebuild_pages import kept_cells

    cells = kept_cells("detection-dev")
    dev = _settings("choices", {"kind": "settings", "role": "development"}, {}, cells,
                    tmp_path / "page")  # fmt: skip
    assert len(dev.table) == 1 + 21
    by = {(r[0], r[1]): r for r in dev.table[1:]}
    # the first development zoo's own choice (its page and configs/results/detection-dev.yaml)
    assert by[("mm-bd", "profile")][2:4] == ["1.000", "8/8"]
    assert dev.notes[-1].startswith("On this zoo alone the rule picks: probes mm-bd, evidence "
                                    "profile, floor 10.")  # fmt: skip
    test = _settings("choices", {"kind": "settings", "role": "test"}, {}, cells, tmp_path / "p")
    assert test.table == dev.table and "Evidence only" in test.notes[-1]
    with pytest.raises(ConfigError, match="role must be development or test"):
        _settings("choices", {"kind": "settings"}, {}, cells, tmp_path / "page")
