from pathlib import Path

import pytest
import torch

from backdoorlab.errors import ConfigError
from backdoorlab.experiment.config import apply_overrides, load_config, parse_override, read_yaml
from backdoorlab.experiment.sweep_spec import expand, load_sweep


def test_sections_are_validated_by_their_component(tiny_config):
    cfg = load_config(tiny_config)
    assert cfg.attack.patch_size == 3 and cfg.defense.name == "none"
    d = cfg.to_dict()
    assert d["attack"]["patch_size"] == 3 and d["dataset"]["size"] == 12
    assert load_config(d).digest() == cfg.digest()
    assert load_config(tiny_config, ["seed=1"]).digest() != cfg.digest()


@pytest.mark.parametrize(
    "override,message",
    [
        (
            "attack.name=nope",
            "attack: unknown attack 'nope' (known: badnets, blended, iad, lc, none",
        ),
        ("attack.rate=1.5", "attack.rate: Input should be less than or equal to 1 (got 1.5)"),
        ("attack.typo=1", "attack.typo: unknown key"),
        ("model.name=vgg", "model: unknown model 'vgg'"),
        ("train.epochs=0", "train.epochs: Input should be greater than or equal to 1"),
        ("device=gpu", "device:"),
        ("extra=1", "extra: unknown key"),
    ],
)
def test_bad_values_name_the_key(tiny_config, override, message):
    with pytest.raises(ConfigError) as exc:
        load_config(tiny_config, [override])
    assert message in str(exc.value) and "\n" not in str(exc.value)


def test_overrides_parse_yaml_values():
    assert parse_override("train.lr=0.01") == (["train", "lr"], 0.01)
    assert parse_override("train.flip=true") == (["train", "flip"], True)
    assert parse_override("train.milestones=[2, 4]") == (["train", "milestones"], [2, 4])
    assert apply_overrides({"a": {"b": 1}}, ["a.c=x", "d.e=2"]) == {
        "a": {"b": 1, "c": "x"},
        "d": {"e": 2},
    }
    with pytest.raises(ConfigError, match="expected section.key=value"):
        parse_override("train.lr")
    with pytest.raises(ConfigError, match="not a section"):
        apply_overrides({"seed": 1}, ["seed.x=2"])


def test_yaml_files(tmp_path):
    good = tmp_path / "exp.yaml"
    good.write_text("dataset: {name: digits}\nmodel: {name: small_cnn}\nattack: {name: badnets}\n")
    assert load_config(good).name == "exp"
    bad = tmp_path / "bad.yaml"
    bad.write_text("dataset: {name: digits\nmodel: [\n")
    with pytest.raises(ConfigError, match="malformed YAML at line"):
        load_config(bad)
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(tmp_path / "list.yaml")
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")


def test_repository_configs_validate():
    repo = Path(__file__).resolve().parents[2]
    configs = sorted((repo / "configs").rglob("*.yaml"))
    assert configs
    for path in configs:
        raw = read_yaml(path)
        if "axes" not in raw:
            load_config(path)
            continue
        for profile in raw.get("profiles") or [None]:  # a sweep file: every cell of each profile
            assert expand(load_sweep(path, profile)), path


def test_detectors_are_validated_by_name_and_absent_when_none_run(tiny_config):
    plain = load_config(tiny_config)
    assert "detect" not in plain.to_dict()  # configs and cell keys without detectors unchanged
    cfg = load_config(tiny_config, ["detect={adv-labels: {eps: 0.2}, nc: {steps: 5}}"])
    assert cfg.detect["adv-labels"].eps == 0.2 and cfg.detect["nc"].steps == 5
    assert cfg.detect["nc"].batch_size == 32  # the reference's defaults fill the rest
    assert load_config(cfg.to_dict()).detect == cfg.detect
    assert cfg.digest() != plain.digest()
    with pytest.raises(ConfigError, match="unknown detector 'nope'"):
        load_config(tiny_config, ["detect={nope: {}}"])
    with pytest.raises(ConfigError, match="detect: nc: steps"):
        load_config(tiny_config, ["detect={nc: {steps: 0}}"])


def test_a_new_component_name_drops_the_keys_it_does_not_have_and_null_removes_a_key(
    tiny_config,
):
    raw = {**tiny_config, "attack": {"name": "badnets", "patch_size": 2, "rate": 0.2}}
    cfg = load_config(raw, ["attack.name=blended", "attack.alpha=0.3"])
    assert cfg.attack.name == "blended" and cfg.attack.alpha == 0.3
    assert cfg.attack.rate == 0.2  # a key both attacks have stays
    assert load_config(raw, ["attack.patch_size=null"]).attack.patch_size == 3  # the default
    with pytest.raises(ConfigError, match="unknown attack 'nope'"):
        load_config(raw, ["attack.name=nope"])


def test_a_sweep_axis_may_switch_a_component_without_nulling_its_keys(tiny_config):
    raw = {**tiny_config, "attack": {"name": "badnets", "patch_size": 2}}
    spec = {"name": "s", "base": raw, "axes": {"attack": {"blended": {"attack.name": "blended"}}}}
    (cell,) = expand(load_sweep(spec))
    assert (
        cell.config.attack.name == "blended" and "patch_size" not in cell.config.to_dict()["attack"]
    )


def test_a_data_seed_fixes_the_data_whatever_the_run_s_seed(tiny_config):
    from backdoorlab.data.base import load_dataset

    plain = load_config(tiny_config)
    assert "seed" not in plain.to_dict()["dataset"]  # hashes of configs without it unchanged
    fixed = [load_config(tiny_config, [f"seed={s}", "dataset.seed=5"]) for s in (1, 2)]
    assert fixed[0].to_dict()["dataset"]["seed"] == 5 and fixed[0].digest() != fixed[1].digest()
    same = [load_dataset(c.dataset, c.seed).train.images for c in fixed]
    assert torch.equal(*same)
    free = [load_config(tiny_config, [f"seed={s}"]) for s in (1, 2)]
    assert not torch.equal(*[load_dataset(c.dataset, c.seed).train.images for c in free])
