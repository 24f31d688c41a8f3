"""Sweep files: axes expand to the right cells, profiles merge, bad files fail with one line."""

from __future__ import annotations

import pytest

from backdoorlab.errors import ConfigError
from backdoorlab.experiment.sweep_spec import expand, load_sweep, merge


@pytest.fixture
def spec(tiny_config):
    return {
        "name": "t",
        "base": tiny_config,
        "set": {"train.epochs": 1},
        "axes": {
            "attack": {
                "badnets": {"attack.name": "badnets"},
                "blended": {"attack.name": "blended", "attack.patch_size": None},
            },
            "budget": {"defense.name": ["at", "at"], "defense.eps": [0.1, 0.2]},
            "seed": {"seed": [0, 1, 2]},
        },
    }


def test_axes_expand_to_their_cartesian_product_with_zipped_lists(spec):
    cells = expand(load_sweep(spec))
    assert len(cells) == 2 * 2 * 3
    labels = {tuple(c.axes.values()) for c in cells}
    assert ("blended", "at/0.2", "2") in labels
    cell = next(
        c for c in cells if c.axes == {"attack": "blended", "budget": "at/0.2", "seed": "2"}
    )
    cfg = cell.config
    assert (cfg.attack.name, cfg.defense.name, cfg.defense.eps, cfg.seed) == (
        "blended",
        "at",
        0.2,
        2,
    )
    assert cfg.train.epochs == 1  # `set` applies to every cell
    assert len({c.key for c in cells}) == len(cells)
    assert all("/" not in c.slug and "/" not in c.config.name for c in cells)


def test_exclude_leaves_out_the_matching_cells_of_the_product(spec):
    spec["exclude"] = [{"attack": "blended", "seed": [1, 2]}, {"budget": "at/0.2", "seed": 0}]
    cells = expand(load_sweep(spec))
    labels = {tuple(c.axes.values()) for c in cells}
    assert len(cells) == 12 - 4 - 2  # the two rules share no cell
    assert ("blended", "at/0.1", "0") in labels and ("badnets", "at/0.1", "2") in labels
    assert not any(a == "blended" and s in ("1", "2") for a, _, s in labels)
    assert ("badnets", "at/0.2", "0") not in labels


def test_profiles_merge_over_the_sweep_and_null_removes(spec):
    spec["profiles"] = {
        "cpu": {"set": {"train.epochs": 2}, "axes": {"seed": None, "attack": {"blended": None}}}
    }
    plain = load_sweep(spec)
    cpu = load_sweep(spec, "cpu")
    assert cpu.profile == "cpu" and plain.profile is None
    cells = expand(cpu)
    assert len(cells) == 2 and {c.axes["attack"] for c in cells} == {"badnets"}
    assert all(c.config.train.epochs == 2 for c in cells)
    assert merge({"a": {"b": 1, "c": 2}}, {"a": {"b": None, "d": 3}}) == {"a": {"c": 2, "d": 3}}


def test_a_base_file_is_read_relative_to_the_sweep_file(tmp_path, tiny_config):
    import yaml

    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "base.yaml").write_text(yaml.safe_dump(tiny_config))
    (tmp_path / "cfg" / "s.yaml").write_text(
        yaml.safe_dump({"base": "base.yaml", "axes": {"rate": {"attack.rate": [0.1, 0.2]}}})
    )
    s = load_sweep(tmp_path / "cfg" / "s.yaml")
    assert s.name == "s" and [c.config.attack.rate for c in expand(s)] == [0.1, 0.2]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"axes": {"x": {"a.b": [1, 2], "a.c": [1]}}}, "zipped lists differ in length"),
        ({"axes": {"x": {"attack.rate": 0.1}}}, "sweep axis 'x'"),
        ({"axes": {"x": {}}}, "has no values"),
        ({"axes": {"r": {"attack.rate": [0.1, 7]}}}, "sweep cell r=7: invalid config: attack.rate"),
        ({"axes": {"r": {"train.verbose": [1, 2]}}}, "sweep cell r=1"),
        ({"axes": {"s": {"a": {}, "b": {}}}}, "same config"),
        ({"unknown": 1}, "sweep: invalid config: unknown: unknown key"),
        ({"exclude": [{"rate": 1}]}, "exclude: rate is not an axis"),
        ({"exclude": [{"attack": ["badnets", "sig"]}]}, "exclude: axis 'attack' has no label sig"),
    ],
)
def test_bad_sweeps_fail_with_one_line_naming_the_problem(spec, change, message):
    spec.update(change)
    with pytest.raises(ConfigError) as err:
        expand(load_sweep(spec))
    assert message in str(err.value) and "\n" not in str(err.value)


def test_an_unknown_profile_is_named(spec):
    spec["profiles"] = {"cpu": {}}
    with pytest.raises(ConfigError, match="no profile 'gpu' \\(cpu\\)"):
        load_sweep(spec, "gpu")


def test_the_cell_key_ignores_the_name_and_the_performance_switches(spec):
    plain = expand(load_sweep(spec))
    spec["set"]["performance.channels_last"] = False
    spec["name"] = "renamed"
    other = expand(load_sweep(spec))
    assert [c.key for c in plain] == [c.key for c in other]
    spec["set"]["train.epochs"] = 2
    assert [c.key for c in expand(load_sweep(spec))] != [c.key for c in plain]
