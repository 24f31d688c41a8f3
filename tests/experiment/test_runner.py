import json
from pathlib import Path

import pytest
import torch

import backdoorlab
from backdoorlab.errors import ConfigError, DataError
from backdoorlab.experiment import ResultStore, load_model, plot_triggers, run


def test_run_writes_folder_row_and_weights(tiny_config, tmp_path):
    out = tmp_path / "runs" / "tiny"
    result = run(tiny_config, out=out, progress=False)
    files = sorted(p.name for p in out.iterdir())
    assert files == [
        "metrics.json",
        "model.safetensors",
        "poison.safetensors",
        "result.json",
        "triggers.png",
    ]
    record = json.loads((out / "result.json").read_text())
    for key in ("acc", "asr", "ra"):
        assert 0 <= record["metrics"][key] <= 100
    assert record["config"]["attack"]["name"] == "badnets"
    assert record["poison"]["count"] == 26 == result.poisoned.count
    assert len(record["history"]) == 2 and "test_asr" in record["history"][-1]
    rows = ResultStore(tmp_path / "runs" / "results.db").rows()
    assert len(rows) == 1 and rows[0]["acc"] == pytest.approx(result.metrics.acc)

    poison = backdoorlab.records.files.load_tensors(out / "poison.safetensors")
    assert torch.equal(poison["indices"], result.poisoned.indices)
    assert "trigger.pattern" in poison and "trigger.mask" in poison
    model = load_model(out)
    x = torch.rand(3, 3, 12, 12)
    assert torch.allclose(model(x), result.model.eval()(x), atol=1e-6)


def test_no_attack_baseline(tiny_config):
    tiny_config["attack"] = {"name": "none"}
    result = run(tiny_config, save=False, progress=False)
    assert result.metrics.asr is None and result.poisoned.count == 0


def test_same_seed_same_metrics(tiny_config):
    a = run(tiny_config, save=False, progress=False)
    b = run(tiny_config, save=False, progress=False)
    assert a.metrics == b.metrics


@pytest.mark.parametrize(
    "override,error",
    [
        ("attack.target=12", ConfigError),
        ("attack.rate=0.9", ConfigError),
        ("dataset.name=mnist", DataError),
    ],
)
def test_bad_input_writes_nothing(tiny_config, tmp_path, override, error):
    if override == "dataset.name=mnist":
        tiny_config["dataset"] = {"name": "mnist", "root": str(tmp_path / "missing")}
    else:
        key, value = override.split("=")
        tiny_config["attack"][key.split(".")[1]] = float(value)
        if key.endswith("target"):
            tiny_config["attack"]["target"] = 12
    with pytest.raises(error):
        run(tiny_config, out=tmp_path / "runs" / "x", progress=False)
    assert not (tmp_path / "runs").exists()


def test_rerun_replaces_the_folder_atomically(tiny_config, tmp_path):
    out = tmp_path / "r"
    run(tiny_config, out=out, progress=False)
    (out / "stale.txt").write_text("old")
    run(tiny_config, out=out, progress=False, overwrite=True)
    assert not (out / "stale.txt").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    assert len(ResultStore(tmp_path / "results.db").rows()) == 2


def test_trigger_grid_png(tiny_config, tmp_path):
    path = plot_triggers(tiny_config, tmp_path / "grid.png", count=4)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_trigger_grid_from_a_saved_run_uses_its_learned_trigger(tiny_config, tmp_path):
    tiny_config["attack"] = {
        "name": "trojan",
        "rate": 0.1,
        "patch_size": 4,
        "steps": 20,
        "step_size": 0.05,
        "clean_model": {"model": {"name": "small_cnn", "width": 8}, "train": {"epochs": 1}},
    }
    tiny_config["train"]["epochs"] = 1
    result = run(tiny_config, out=tmp_path / "r", progress=False)
    from backdoorlab.experiment.prepare import prepare

    prep = prepare(result.config, trigger_from=tmp_path / "r")
    saved = backdoorlab.records.files.load_tensors(tmp_path / "r" / "poison.safetensors")
    assert torch.equal(prep.attack.pattern, saved["trigger.pattern"])
    assert plot_triggers(None, tmp_path / "g.png", run_dir=tmp_path / "r").is_file()


def test_user_attack_registers_from_user_code(tiny_config):
    from backdoorlab.attacks import Attack, AttackConfig, register_attack

    class InvertConfig(AttackConfig):
        strength: float = 1.0

    @register_attack("test_invert", config=InvertConfig)
    class Invert(Attack):
        """Inverts the image."""

        def trigger(self, x):
            return 1 - x * self.cfg.strength

    tiny_config["attack"] = {"name": "test_invert", "rate": 0.2, "strength": 1.0}
    result = run(tiny_config, save=False, progress=False)
    assert result.poisoned.count == round(0.2 * 256)
    assert "test_invert" in dict(backdoorlab.list_components()["attacks"])


def test_clean_subset_avoids_poisoned_samples_and_has_its_share(synthetic):
    from backdoorlab.experiment.runner import clean_subset

    data = synthetic(train_size=400).train
    poisoned = torch.arange(0, 400, 3)  # every third sample
    sub = clean_subset(data, poisoned, 0.05, seed=1)
    assert len(sub) == 20
    # find each subset image back in the training set: none of them is a poisoned one
    flat = data.images.flatten(1)
    picked = [int((flat == img.flatten()).all(1).nonzero()[0]) for img in sub.images]
    assert not set(picked) & set(poisoned.tolist())
    assert torch.equal(clean_subset(data, poisoned, 0.05, seed=1).images, sub.images)
    assert not torch.equal(clean_subset(data, poisoned, 0.05, seed=2).images, sub.images)


@pytest.mark.serial
def test_two_runs_of_quickstart_cat_give_identical_metrics_and_weights(tmp_path):
    """CAT on Blended digits (the README's headline) twice at one thread count: the same bits.
    Two epochs instead of 30 keep it to seconds; the code path is the config's."""
    from safetensors.torch import load_file

    config = Path(__file__).resolve().parents[2] / "configs" / "quickstart-cat.yaml"
    over = ["train.epochs=2", "performance.threads=2", "device=cpu"]
    a = run(config, overrides=over, out=tmp_path / "a", progress=False)
    b = run(config, overrides=over, out=tmp_path / "b", progress=False)

    def numbers(history):  # everything but the wall-clock seconds
        return [{k: v for k, v in h.items() if k != "seconds"} for h in history]

    assert a.metrics == b.metrics and numbers(a.history) == numbers(b.history)
    wa, wb = (
        load_file(tmp_path / "a" / "model.safetensors"),
        load_file(tmp_path / "b" / "model.safetensors"),
    )
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    assert json.loads((tmp_path / "a" / "result.json").read_text())["threads"] == 2
    assert torch.get_num_threads() == 1  # the run's thread count does not outlive it


def test_deterministic_switch_is_on_during_the_run_only(tiny_config, tmp_path):
    tiny_config["performance"] = {"deterministic": True, "threads": 1}
    run(tiny_config, out=tmp_path / "r", progress=False)
    record = json.loads((tmp_path / "r" / "result.json").read_text())
    assert record["deterministic"] is True and record["threads"] == 1
    assert not torch.are_deterministic_algorithms_enabled()


def test_detectors_see_only_the_defender_s_images_and_acc_still_the_whole_split(tiny_config):
    tiny_config["detect"] = {"adv-labels": {"steps": 1}}
    whole = run(tiny_config, save=False, progress=False)
    part = run({**tiny_config, "defender_images": 40}, save=False, progress=False)
    assert whole.metrics.detect["adv-labels"]["details"]["images"] == 128
    assert part.metrics.detect["adv-labels"]["details"]["images"] == 40
    assert part.metrics.acc == whole.metrics.acc  # the same model, measured on all 128
    with pytest.raises(ConfigError, match="`defender_images`: 500 asked, the test split has 128"):
        run({**tiny_config, "defender_images": 500}, save=False, progress=False)
