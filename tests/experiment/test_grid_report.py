import pytest

from backdoorlab.analysis import aft_curve
from backdoorlab.errors import ConfigError
from backdoorlab.experiment import run
from backdoorlab.experiment.grid_report import defense_grid


def test_grid_takes_no_defense_from_the_infected_model_and_averages_drops(tiny_config, tmp_path):
    aft = {"name": "aft", "epochs": 1, "steps": 2, "eps": 0.1, "curve_every": 1}
    a = run({**tiny_config, "defense": aft}, out=tmp_path / "aft", progress=False)
    m = run({**tiny_config, "defense": {"name": "mixup"}}, out=tmp_path / "mix", progress=False)
    out = defense_grid([tmp_path / "aft", tmp_path / "mix"], tmp_path / "g.md")
    text = out.read_text()
    base = a.metrics["infected"]["metrics"]
    row = (
        f"| badnets (10%) | {base['acc']:.2f} | {base['asr']:.2f} | {a.metrics['acc']:.2f} | "
        f"{a.metrics['asr']:.2f} | {m.metrics['acc']:.2f} | {m.metrics['asr']:.2f} |"
    )
    assert "| attack | none ACC | none ASR | aft ACC | aft ASR | mixup ACC | mixup ASR |" in text
    assert row in text
    drop = f"{base['acc'] - a.metrics['acc']:.2f} | {base['asr'] - a.metrics['asr']:.2f}"
    assert f"| **Avg. Drop** | - | - | {drop} |" in text
    png = aft_curve(tmp_path / "aft", tmp_path / "curve.png")
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert [p["step"] for p in a.metrics["aft_curve"]] == [0, 1]  # 13 clean images: 1 step
    with pytest.raises(ConfigError, match="not an AFT run"):
        aft_curve(tmp_path / "mix", tmp_path / "c2.png")


def test_the_der_row_averages_each_defense_against_its_rows_baseline():
    from backdoorlab.experiment.report import DER_ROW, Grid

    cells = {
        ("badnets", "none"): {"acc": 95.0, "asr": 100.0},
        ("badnets", "ft"): {"acc": 93.0, "asr": 10.0},  # DER (0.9 - 0.02 + 1) / 2 = 0.94
        ("blended", "none"): {"acc": 90.0, "asr": 50.0},
        ("blended", "ft"): {"acc": 92.0, "asr": 60.0},  # no gain, no loss: 0.5
    }
    grid = Grid(["badnets", "blended"], ["none", "ft"], cells, baseline="none")
    assert grid.cell_der("badnets", "ft") == pytest.approx(0.94)
    assert grid.mean_der("ft") == pytest.approx(0.72) and grid.mean_der("none") is None
    label, row = grid.pairs()[-1]
    assert label == DER_ROW and row == [("-", ""), ("0.720", "")]
    assert "0.94" in grid.csv().splitlines()[2]
