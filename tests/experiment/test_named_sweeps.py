"""Named sweeps: every paper sweep is valid at both profiles; names resolve or are listed."""

from __future__ import annotations

from pathlib import Path

import pytest

from backdoorlab.errors import ConfigError
from backdoorlab.experiment.sweep import plan, sweep
from backdoorlab.experiment.sweep_spec import expand, find_sweep, load_sweep, sweep_files
from backdoorlab.report import Grid

REPO = Path(__file__).resolve().parents[2]


def test_every_paper_sweep_expands_at_the_cpu_and_full_profiles():
    sweeps = {k: v for k, v in sweep_files().items() if v.parent.parent.name == "paper"}
    assert {"gao2023-table7", "mu2022-table2"} <= set(sweeps)
    for name, path in sweeps.items():
        for profile in ("cpu", "full"):
            spec = load_sweep(path, profile)
            cells = expand(spec)
            assert cells, name
            datasets = {c.config.dataset.name for c in cells}
            if profile == "cpu":
                assert datasets <= {"mnist", "digits"}, (name, datasets)
                assert {c.config.model.name for c in cells} == {"small_cnn"}
            else:
                assert datasets.isdisjoint({"mnist", "digits"}), (name, datasets)
            for entry in spec.reports.values():  # every report names real axes or keys
                for key in ("rows", "columns", "lines", "panels"):
                    if key in entry:
                        assert entry[key] in spec.axes or "." in entry[key], (name, entry[key])


def test_table7_published_numbers_give_the_papers_avg_drop_row():
    """The transcription of Gao Table VII reproduces the paper's own Avg. Drop row."""
    spec = load_sweep("gao2023-table7", "cpu")
    entry = spec.reports["table7"]
    grid = Grid(list(entry["paper"]), ["none", "fp", "nad", "dpsgd", "abl", "cat"], {}, "none",
                entry["paper"])  # fmt: skip
    printed = {"fp": (4.08, 35.43), "nad": (8.34, 89.17), "dpsgd": (23.06, 28.42),
               "abl": (13.61, 48.31), "cat": (14.33, 81.26)}  # fmt: skip
    for col, (acc, asr) in printed.items():
        ours = grid.paper_drop(col)
        assert ours == pytest.approx((acc, asr), abs=0.006), col


def test_sweeps_by_name_and_an_unknown_name_lists_the_known_ones(tmp_path):
    files = sweep_files()
    assert files["attacks-mnist"].parent.name == "results"
    assert files["digits-zoo"].parent.name == "sweeps"
    assert find_sweep("mu2022-table2") == files["mu2022-table2"]
    assert load_sweep("attacks-mnist").name == "attacks-mnist"
    with pytest.raises(ConfigError, match="no sweep named 'gao2023-table99'.*gao2023-table7"):
        sweep("gao2023-table99", tmp_path, profile="cpu")
    with pytest.raises(ConfigError, match="sweep: no file missing.yaml"):
        load_sweep("missing.yaml")


def test_every_results_page_sweep_expands_and_its_reports_name_real_cells():
    """configs/results: each page's sweep is valid, and every cell a report selects exists."""
    from backdoorlab.report import REPORT_KINDS

    pages = {k: v for k, v in sweep_files().items() if v.parent.name == "results"}
    assert {"attacks-mnist", "clean-label-sweep-mnist", "post-training-mnist"} <= set(pages)
    for name in pages:
        spec = load_sweep(name)
        labels = {tuple(sorted(c.axes.items())) for c in expand(spec)}
        for rid, entry in spec.reports.items():
            assert entry["kind"] in REPORT_KINDS, (name, rid)
            for key in ("baseline", "run", "benign"):  # each names exactly one cell
                if isinstance(entry.get(key), dict):  # (a grid's baseline is a column label)
                    hits = [c for c in labels if set(entry[key].items()) <= set(c)]
                    assert len(hits) == 1, (name, rid, key, len(hits))


def test_table7_has_a_photos_profile_on_natural_images_at_cpu_scale():
    cells = expand(load_sweep("gao2023-table7", "photos"))
    # WaNet and SIG plant nothing on photos: no defense only; the others (and BadNets at 5%
    # beside its 1%) every defense at seed 0, none and CAT at seeds 1 and 2
    defended = ("badnets", "badnets-5pct", "lc", "blended", "trojan")
    assert len(cells) == 2 * 3 + len(defended) * (14 + 2 * 2)
    assert {c.config.dataset.name for c in cells} == {"photos"}
    assert {c.config.model.name for c in cells} == {"small_cnn"}
    lc = next(c.config for c in cells if c.axes["attack"] == "lc")
    assert lc.attack.surrogate.model.name == "small_cnn"  # not the paper's ResNet-18
    seen = {c.axes["attack"]: (c.config.attack.rate, c.config.attack.label_mode) for c in cells}
    assert seen == {**SEC_IV_A, "badnets-5pct": (0.05, "dirty")}
    assert {c.config.defense.gamma for c in cells if c.config.defense.name == "abl"} == {0.0}
    repeated = {c.axes["defense"] for c in cells if c.axes["seed"] != "0"}
    assert repeated == {"none", "cat"}
    undefended = {c.axes["attack"] for c in cells if c.axes["defense"] == "none"} - set(defended)
    assert {c.axes["attack"] for c in cells if c.axes["defense"] != "none"} == set(defended)
    assert undefended == {"wanet", "sig"}


SEC_IV_A = {  # Gao Sec. IV-A-1 (Tables VII, X): rate and label mode of each attack
    "badnets": (0.01, "dirty"),
    "lc": (0.01, "clean"),
    "sig": (0.01, "clean"),
    "blended": (0.05, "dirty"),
    "wanet": (0.05, "dirty"),
    "trojan": (0.002, "dirty"),
}
SEC_III_A = {"badnets": (0.005, "clean"), "lc": (0.005, "clean"), "trojan": (0.01, "dirty")}


@pytest.mark.parametrize("name", ["gao2023-table7", "gao2023-table10"])
def test_tables_vii_and_x_run_at_section_iv_a_rates_and_fig2_at_section_iii_a(name):
    seen = {}
    for cell in plan(name, "full"):
        attack = cell.config.attack
        seen[cell.axes["attack"]] = (attack.rate, attack.label_mode)
        if cell.config.defense.name == "abl":
            assert cell.config.defense.gamma == 0  # Gao set gamma 0
    assert seen == SEC_IV_A
    fig2 = {c.axes["attack"]: (c.config.attack.rate, c.config.attack.label_mode)
            for c in plan("gao2023-fig2", "full")}  # fmt: skip
    assert {k: fig2[k] for k in SEC_III_A} == SEC_III_A


def test_table_xi_varies_the_rate_of_dirty_label_badnets():
    cells = plan("gao2023-table11", "full")
    assert {c.config.attack.label_mode for c in cells} == {"dirty"}
    assert {c.config.attack.rate for c in cells} == {0.01, 0.05, 0.1}


def test_named_sweeps_come_with_the_package_from_any_folder(tmp_path, monkeypatch):
    """The package's own configs (package data of a wheel; a link in a checkout), not the
    working directory's, answer a name where ./configs has none."""
    from importlib import resources

    monkeypatch.chdir(tmp_path)
    packaged = Path(str(resources.files("backdoorlab") / "configs"))
    assert find_sweep("gao2023-table7") == packaged / "paper" / "gao2023" / "table7.yaml"
    assert load_sweep("gao2023-table7", "full").name == "gao2023-table7"  # bases resolve
    (tmp_path / "configs" / "sweeps").mkdir(parents=True)
    mine = tmp_path / "configs" / "sweeps" / "digits-zoo.yaml"
    mine.write_text((packaged / "sweeps" / "digits-zoo.yaml").read_text())
    assert find_sweep("digits-zoo").resolve() == mine.resolve()  # the working directory's wins
    pyproject = (REPO / "pyproject.toml").read_text()
    assert '"configs/**/*.yaml", "configs/**/*.png"' in pyproject  # in the wheel's package data


def test_table_vii_full_searches_fine_pruning_ratios_as_gao_did():
    """Sec. IV-A-2: ratios 5-95% in steps of 5%, the one with the ACC closest to CAT's kept."""
    cells = plan("gao2023-table7", "full")
    fp = [c.config.defense for c in cells if c.config.defense.name == "fp"]
    assert sorted({d.ratio for d in fp}) == [round(0.05 * k, 2) for k in range(1, 20)]
    assert len(fp) == 19 * 6
    rule = load_sweep("gao2023-table7", "full").reports["table7"]["closest"]
    assert (rule["label"], rule["to"]) == ("fp", "cat")
    cpu = plan("gao2023-table7", "cpu")  # the same selection at ratios 10-90%, three seeds
    cpu_fp = [c.config for c in cpu if c.config.defense.name == "fp"]
    assert sorted({c.defense.ratio for c in cpu_fp}) == [round(0.1 * k, 1) for k in range(1, 10)]
    assert {c.seed for c in cpu_fp} == {0, 1, 2}
    # LC and SIG plant nothing at 1% on MNIST: only their no-defense cells run
    assert {c.attack.name for c in cpu_fp} == {"badnets", "blended", "wanet", "trojan"}
    assert len(cpu_fp) == 9 * 4 * 3
    assert load_sweep("gao2023-table7", "cpu").reports["table7"]["closest"]["to"] == "cat"


def test_table_vii_cpu_runs_sec_iv_a_rates_and_abl_at_gamma_0():
    cells = {c.label: c.config for c in plan("gao2023-table7", "cpu")}
    rates = {a: cells[f"attack={a},defense=none,seed=0"].attack for a in
             ("badnets", "lc", "blended", "wanet", "trojan", "sig")}  # fmt: skip
    assert {a: (x.rate, x.rate_of) for a, x in rates.items()} == {
        "badnets": (0.01, "dataset"), "lc": (0.01, "dataset"), "blended": (0.05, "dataset"),
        "wanet": (0.05, "dataset"), "trojan": (0.002, "dataset"), "sig": (0.01, "dataset"),
    }  # fmt: skip
    assert rates["badnets"].label_mode == "dirty"
    abl = [c for c in cells.values() if c.defense.name == "abl"]
    assert len(abl) == 4 * 3 and {c.defense.gamma for c in abl} == {0.0}


def test_table_x_cpu_runs_table_vii_cpus_attacks_and_no_cat_where_nothing_plants():
    seven = {c.axes["attack"]: c.config.attack for c in plan("gao2023-table7", "cpu")
             if c.axes["defense"] == "none" and c.axes["seed"] == "0"}  # fmt: skip
    cells = plan("gao2023-table10", "cpu")
    ten = {c.axes["attack"]: c.config.attack for c in cells if c.axes["defense"] == "none"}
    setting = ("rate", "rate_of", "label_mode", "target")
    assert {a: tuple(getattr(x, k) for k in setting) for a, x in ten.items()} == {
        a: tuple(getattr(x, k) for k in setting) for a, x in seven.items()
    }
    cat = {(c.axes["attack"], c.config.defense.beta) for c in cells if c.axes["defense"] != "none"}
    assert cat == {
        (a, b) for a in ("badnets", "blended", "wanet", "trojan") for b in (1.0, 0.9, 0.8)
    }
