import json
import shutil

import pytest
import torch

from backdoorlab.analysis import adversarial_labels, feature_distances, feature_tsne
from backdoorlab.analysis.common import load_run
from backdoorlab.cli import main
from backdoorlab.errors import ConfigError
from backdoorlab.experiment import run

# keeps the module on one xdist worker, so that its `runs` fixture trains once (`--dist
# loadgroup`; with pytest 9.2 it does not group, pytest-xdist#1386: pyproject.toml keeps pytest
# below it)
pytestmark = pytest.mark.xdist_group("analyses")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    base = {
        "seed": 0,
        "device": "cpu",
        "dataset": {
            "name": "synthetic",
            "num_classes": 4,
            "size": 12,
            "train_size": 256,
            "test_size": 96,
        },
        "model": {"name": "small_cnn", "width": 8, "stages": 2},
        "train": {"epochs": 3, "batch_size": 64, "lr": 0.05, "eval_every": 0},
    }
    attack = {"name": "badnets", "target": 0, "rate": 0.1, "patch_size": 3}
    run({**base, "name": "infected", "attack": attack}, out=root / "infected", progress=False)
    run({**base, "name": "benign", "attack": {"name": "none"}}, out=root / "benign", progress=False)
    return root


def test_adversarial_label_matrix_is_consistent(runs, tmp_path):
    r = adversarial_labels(runs / "infected", runs / "benign", tmp_path, eps=0.1, steps=3)
    saved = json.loads((tmp_path / "adversarial-labels.json").read_text())
    assert saved["gap"] == pytest.approx(r["gap"])
    for key in ("infected", "benign"):
        m = torch.tensor(r[key]["matrix"])
        assert m.sum() == r["images"] and m[0].sum() == 0  # no target-class image is attacked
        assert r[key]["target_share"] == pytest.approx(100 * m[:, 0].sum().item() / r["images"])
        assert sum(r[key]["label_shares"]) == pytest.approx(100, abs=0.05)
    assert r["gap"] == pytest.approx(r["infected"]["target_share"] - r["benign"]["target_share"])
    assert (tmp_path / "adversarial-labels.png").read_bytes()[:4] == b"\x89PNG"


def test_feature_distances_and_tsne(runs, tmp_path):
    d = feature_distances(runs / "infected", runs / "benign", tmp_path, eps=0.1, steps=3)
    test = load_run(runs / "infected").test
    assert d["D_infected"] > 0 and d["D_benign"] > 0
    assert d["images"] == int((test.labels != 0).sum())  # the non-target test images
    t = feature_tsne(runs / "infected", tmp_path, count=40)
    assert len(t["clean"]["points"]) == 40 and len(t["triggered"]["points"]) == 40
    assert all(label != 0 for label in t["triggered"]["labels"])
    for name in ("feature-distances.png", "tsne.png", "tsne.json"):
        assert (tmp_path / name).stat().st_size > 0


def test_an_analysis_gives_the_same_numbers_whatever_the_random_state(runs, tmp_path):
    torch.manual_seed(123)
    a = feature_distances(runs / "infected", runs / "benign", tmp_path / "a", eps=0.1, steps=3)
    torch.manual_seed(456)  # PGD's random starts come from the analysis's own seed
    b = feature_distances(runs / "infected", runs / "benign", tmp_path / "b", eps=0.1, steps=3)
    assert a == b


def test_runs_with_different_test_sets_are_refused(runs, tmp_path):
    other = {
        "name": "other",
        "seed": 1,
        "device": "cpu",
        "dataset": {
            "name": "synthetic",
            "num_classes": 4,
            "size": 12,
            "train_size": 128,
            "test_size": 50,
        },
        "model": {"name": "small_cnn", "width": 8, "stages": 2},
        "attack": {"name": "none"},
        "train": {"epochs": 1, "eval_every": 0},
    }
    run(other, out=tmp_path / "other", progress=False)
    with pytest.raises(ConfigError, match="do not share a test set"):
        adversarial_labels(runs / "infected", tmp_path / "other", tmp_path / "o", eps=0.1)


def test_cli_analyze_needs_a_benign_run(runs, tmp_path, capsys):
    assert main(["analyze", "labels", "--run", str(runs / "infected"), "--out", str(tmp_path)]) == 2
    assert "--benign" in capsys.readouterr().err


def test_analysis_report_kind_runs_the_declared_analyses_on_sweep_cells(tmp_path):
    from backdoorlab.experiment.sweep import sweep
    from backdoorlab.report import report

    base = {
        "device": "cpu",
        "dataset": {"name": "synthetic", "num_classes": 4, "size": 12, "train_size": 256,
                    "test_size": 96},
        "model": {"name": "small_cnn", "width": 8, "stages": 2},
        "attack": {"name": "badnets", "target": 0, "rate": 0.1, "patch_size": 3},
        "train": {"epochs": 3, "batch_size": 64, "lr": 0.05, "eval_every": 0},
    }  # fmt: skip
    spec = {
        "name": "an",
        "base": base,
        "axes": {"attack": {"badnets": {}, "clean": {"attack": {"name": "none"}}}},
        "reports": {
            "labels": {"kind": "analysis", "analysis": "labels", "run": {"attack": "badnets"},
                       "benign": {"attack": "clean"}, "options": {"eps": 0.1, "steps": 2}},
            "curve": {"kind": "analysis", "analysis": "curve", "run": {"attack": "badnets"}},
        },
    }  # fmt: skip
    result = sweep(spec, tmp_path / "sw", progress=False, say=lambda _: None)
    path, sections = report(result.db, tmp_path / "page", figures=["labels"])
    [labels] = sections
    [(_, png)] = labels.figures
    assert png == tmp_path / "page-labels" / "adversarial-labels.png" and png.is_file()
    saved = json.loads((tmp_path / "page-labels" / "adversarial-labels.json").read_text())
    share = f"{saved['infected']['target_share']:.2f}%"
    assert labels.notes == [
        f"Adversarial examples labelled as the target (class 0): infected {share}, benign "
        f"{saved['benign']['target_share']:.2f}%."
    ]
    assert "![labels](page-labels/adversarial-labels.png)" in path.read_text()
    with pytest.raises(ConfigError, match="not an AFT run"):  # the curve needs an AFT cell
        report(result.db, tmp_path / "page", figures=["curve"])
    # the run folders gone, the page is written again from the database and the numbers the
    # analysis kept beside it; numbers kept for other options are refused
    page = path.read_text()
    shutil.rmtree(tmp_path / "sw" / "cells")
    assert not list((tmp_path / "sw").rglob("model.safetensors"))
    again, _ = report(result.db, tmp_path / "page", figures=["labels"])
    assert again.read_text() == page
    inputs = tmp_path / "page-labels" / "inputs.json"
    kept = json.loads(inputs.read_text())
    assert kept["options"] == {"eps": 0.1, "steps": 2} and kept["benign"] is not None
    inputs.write_text(json.dumps({**kept, "options": {"eps": 0.3, "steps": 2}}))
    with pytest.raises(ConfigError, match="is of other cells or options"):
        report(result.db, tmp_path / "page", figures=["labels"])
    inputs.unlink()
    with pytest.raises(ConfigError, match="holds no earlier result"):
        report(result.db, tmp_path / "page", figures=["labels"])
