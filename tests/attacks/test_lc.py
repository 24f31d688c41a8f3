import pytest
import torch
from safetensors.torch import save_file

from backdoorlab.attacks import ATTACKS, build_attack
from backdoorlab.errors import ConfigError
from backdoorlab.models import MODELS, build_model

FAST = {
    "model": {"name": "small_cnn", "width": 8, "stages": 2},
    "train": {"epochs": 1, "batch_size": 64},
    "at_steps": 1,
}


@pytest.fixture(scope="module")
def data(synthetic):
    return synthetic(size=12, train_size=200, test_size=50).train


def lc(spec, **kw):
    kw.setdefault("surrogate", FAST)
    return build_attack(ATTACKS.entry("lc").config(name="lc", **kw), spec)


def test_four_mirrored_corners_and_amplitude(data):
    a = lc(data.spec, patch_size=2, amplitude=0.25)
    assert int(a.mask.sum()) == 16
    p = a.pattern[0, 0]
    assert torch.equal(p[:2, :2], p[-2:, -2:].flip(0).flip(1))
    assert torch.equal(p[:2, -2:], p[-2:, -2:].flip(0))
    x = torch.full((1, 3, 12, 12), 0.5)
    assert torch.allclose(a.trigger(x).clamp(0, 1)[0, :, -2:, -2:], p[-2:, -2:].expand(3, 2, 2))
    low = a.poison_trigger(x)[0, 0]
    assert set(low[a.mask[0, 0] > 0].tolist()) == {0.25, 0.75}
    assert torch.equal(low[a.mask[0, 0] == 0], x[0, 0][a.mask[0, 0] == 0])


def test_poison_hardens_target_images_within_eps_and_keeps_labels(data):
    a = lc(data.spec, rate=0.5, eps=0.1, steps=5, alpha=0.05, patch_size=2)
    a.fit(data)
    p = a.poison(data, torch.Generator().manual_seed(0))
    assert torch.equal(p.data.labels, data.labels)
    assert torch.all(data.labels[p.indices] == 0)
    outside = a.mask[0, 0] == 0
    diff = (p.data.floats(p.indices) - data.floats(p.indices))[:, :, outside]
    assert diff.abs().max() <= 0.1 + 1 / 255 and diff.abs().max() > 0.02
    assert "surrogate.fc.weight" in a.state()


def test_surrogate_weights_file(data, tmp_path):
    model = build_model(MODELS.validate({"name": "small_cnn", "width": 8, "stages": 2}), data.spec)
    save_file(model.state_dict(), str(tmp_path / "s.safetensors"))
    a = lc(data.spec, surrogate={**FAST, "weights": str(tmp_path / "s.safetensors")})
    a.fit(data)
    assert torch.equal(a.surrogate.fc.weight, model.fc.weight)
    bad = lc(data.spec, surrogate={**FAST, "weights": str(tmp_path / "none.safetensors")})
    with pytest.raises(ConfigError, match="surrogate.weights"):
        bad.fit(data)
    (tmp_path / "bad.safetensors").write_bytes(b"garbage")
    with pytest.raises(ConfigError, match="cannot load"):
        lc(data.spec, surrogate={**FAST, "weights": str(tmp_path / "bad.safetensors")}).fit(data)


def test_clean_label_only():
    with pytest.raises(ValueError):
        ATTACKS.entry("lc").config(name="lc", label_mode="dirty")


def test_extract_weights_keeps_a_runs_surrogate_as_a_file(tiny_config, tmp_path):
    from safetensors.torch import load_file

    from backdoorlab.attacks.auxiliary import extract_weights
    from backdoorlab.experiment import load_config, prepare, run

    aux = {"model": {"name": "small_cnn", "width": 8, "stages": 2}, "train": {"epochs": 1}}
    tiny_config["attack"] = {"name": "lc", "rate": 0.5, "steps": 2, "eps": 0.1,
                             "surrogate": {**aux, "at_steps": 1}}  # fmt: skip
    tiny_config["train"]["epochs"] = 1
    run(tiny_config, out=tmp_path / "r", progress=False)
    out = extract_weights(tmp_path / "r", "surrogate", tmp_path / "s.safetensors")
    saved = load_file(str(out))
    fitted = prepare(load_config(tiny_config)).attack.surrogate.state_dict()  # the same fit
    assert set(saved) == set(fitted)
    assert all(torch.equal(saved[k], fitted[k]) for k in saved)
    with pytest.raises(ConfigError, match="stores no 'clean_model'"):
        extract_weights(tmp_path / "r", "clean_model", tmp_path / "t.safetensors")
