import json

import pytest

from backdoorlab import budget_report
from backdoorlab.errors import ConfigError
from backdoorlab.experiment import run
from backdoorlab.report.budget import load_sweep

CELLS = {
    "none": {"name": "none"},
    "at-linf-a": {"name": "at", "threat": "linf", "eps": 0.1, "steps": 1},
    "at-linf-b": {"name": "at", "threat": "linf", "eps": 0.2, "steps": 1},
    "at-spatial": {"name": "at", "threat": "spatial", "eps": 0.05, "steps": 1},
    "random-linf": {"name": "random", "threat": "linf", "eps": 0.1},
    "relaxed": {"name": "at", "threat": "linf", "eps": 0.1, "steps": 1, "beta": 0.7},
    "cat": {"name": "cat", "eps_s": 0.02, "eps_l": 0.1, "steps": 1},
}


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory):
    """A real (tiny, one-epoch) sweep: one run folder per kind of cell."""
    root = tmp_path_factory.mktemp("sweep") / "tiny-sweep"
    base = {
        "name": "cell",
        "seed": 0,
        "device": "cpu",
        "dataset": {
            "name": "synthetic",
            "num_classes": 4,
            "size": 12,
            "train_size": 128,
            "test_size": 64,
        },
        "model": {"name": "small_cnn", "width": 8, "stages": 2},
        "attack": {"name": "badnets", "target": 0, "rate": 0.1, "patch_size": 3},
        "train": {"epochs": 1, "batch_size": 64, "lr": 0.05, "eval_every": 1},
    }
    for name, defense in CELLS.items():
        run({**base, "name": name, "defense": defense}, out=root / name, progress=False)
    return root


def metrics(sweep_dir, cell):
    return json.loads((sweep_dir / cell / "result.json").read_text())["metrics"]


def test_cells_sorted_by_what_their_defense_varies(sweep_dir):
    s = load_sweep(sweep_dir)
    assert s.baseline["name"] == "none"
    assert sorted(s.at["linf"]) == [0.1, 0.2] and list(s.at["spatial"]) == [0.05]
    assert list(s.random["linf"]) == [0.1]
    assert list(s.relaxed[("linf", 0.1)]) == [0.7]
    assert [r["name"] for r in s.cat] == ["cat"] and not s.other


def test_report_tables_carry_the_runs_numbers(sweep_dir, tmp_path):
    out = budget_report([sweep_dir], tmp_path / "at.md", runs=[sweep_dir / "cat"], command="x")
    text = out.read_text()
    at, rnd = metrics(sweep_dir, "at-linf-a"), metrics(sweep_dir, "random-linf")
    row = (
        f"| L_inf | 0.1 | {at['acc']:.2f} | {at['asr']:.2f} | {rnd['acc']:.2f} | {rnd['asr']:.2f} |"
    )
    assert row in text
    # the relaxation table lists beta 1 (the plain AT cell of the same budget) above beta 0.7
    rel = metrics(sweep_dir, "relaxed")
    beta1 = text.index(f"| 1 | {at['acc']:.2f} | {at['asr']:.2f} |")
    assert beta1 < text.index(f"| 0.7 | {rel['acc']:.2f} | {rel['asr']:.2f} |")
    base = metrics(sweep_dir, "none")
    assert f"No defense: ACC {base['acc']:.2f}, ASR {base['asr']:.2f}." in text
    assert "| 0.02 | 0.1 | 0.8 | 1 |" in text  # CAT row: eps_s, eps_l, beta, steps
    assert "## Single configurations" in text and "cat, eps_s 0.02, eps_l 0.1" in text
    png = tmp_path / "at-tiny-sweep.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and "(at-tiny-sweep.png)" in text


def test_empty_folder_is_one_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="no finished run folders"):
        budget_report([tmp_path], tmp_path / "r.md")
    assert not (tmp_path / "r.md").exists()
