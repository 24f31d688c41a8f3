"""Weights from elsewhere: foreign layouts load with the same logits, code in a file never runs,
weights that do not fit are one line naming the keys."""

from __future__ import annotations

import re

import pytest
import torch

from backdoorlab.data.base import InputSpec
from backdoorlab.errors import BackdoorlabError, ConfigError, DataError
from backdoorlab.models import MODELS, build_model
from backdoorlab.models.foreign import Normalized, load_foreign, read_state_dict

SPEC = InputSpec(3, (32, 32), 10, (0.5, 0.4, 0.3), (0.2, 0.25, 0.3))


def _trained_like(model: torch.nn.Module) -> torch.nn.Module:
    """Random BN statistics too, so a mapping that drops them cannot pass."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if t.is_floating_point() and not name.startswith("normalize."):
                t.copy_(torch.rand(t.shape, generator=g) * 0.2 + (0.9 if "var" in name else -0.1))
    return model.eval()


def _to_backdoorbench(state: dict) -> dict:
    out = {}
    for k, v in state.items():
        if k.startswith("normalize."):
            continue  # BackdoorBench normalises in its data transforms
        k = re.sub(r"^stem\.", "conv1.", k)
        k = re.sub(r"^groups\.(\d)\.", lambda m: f"layer{int(m.group(1)) + 1}.", k)
        k = re.sub(r"\.shortcut\.", ".shortcut.0.", k)
        k = re.sub(r"^fc\.", "linear.", k)
        out[k] = v
    return out


def _to_torchvision(state: dict) -> dict:
    out = {}
    for k, v in state.items():
        if k.startswith("normalize."):
            continue
        k = re.sub(r"^stem\.0\.", "conv1.", k)
        k = re.sub(r"^stem\.1\.", "bn1.", k)
        k = re.sub(r"^groups\.(\d)\.", lambda m: f"layer{int(m.group(1)) + 1}.", k)
        k = re.sub(r"\.shortcut\.", ".downsample.", k)
        out[k] = v
    return out


@pytest.mark.parametrize(
    "arch,options,layout,rename",
    [
        ("preact_resnet18", {"width": 8}, "backdoorbench-preactresnet18", _to_backdoorbench),
        ("resnet18", {"width": 8, "stem": "imagenet"}, "torchvision-resnet18", _to_torchvision),
    ],
)
def test_a_foreign_layout_loads_with_the_same_logits(tmp_path, arch, options, layout, rename):
    ours = _trained_like(build_model(MODELS.validate({"name": arch, **options}), SPEC))
    foreign = rename(ours.state_dict())
    if layout == "backdoorbench-preactresnet18":
        assert "layer4.1.conv2.weight" in foreign and "linear.weight" in foreign
        assert "layer2.0.shortcut.0.weight" in foreign
    else:
        assert "conv1.weight" in foreign and "bn1.running_var" in foreign
        assert "layer3.0.downsample.1.weight" in foreign and "fc.weight" in foreign
    torch.save(foreign, tmp_path / "foreign.pt")
    loaded = load_foreign(tmp_path / "foreign.pt", arch, SPEC, options=options, key_map=layout)
    x = torch.rand(4, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), ours(x), atol=1e-5, rtol=0)


def test_a_pickle_that_would_run_code_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))  # would create the marker when unpickled

    torch.save({"fc.weight": torch.zeros(2, 2), "evil": Payload()}, tmp_path / "evil.pt")
    with pytest.raises(DataError, match="refused") as info:
        read_state_dict(tmp_path / "evil.pt")
    assert "\n" not in str(info.value)
    assert not marker.exists()


def test_checkpoint_wrappers_and_dataparallel_prefixes_are_unwrapped(tmp_path):
    model = build_model(MODELS.validate({"name": "small_cnn", "width": 4}), SPEC)
    state = {f"module.{k}": v for k, v in model.state_dict().items()}
    torch.save({"epoch": 3, "state_dict": state}, tmp_path / "ckpt.pth")
    assert read_state_dict(tmp_path / "ckpt.pth").keys() == model.state_dict().keys()


def test_weights_that_do_not_fit_name_the_keys(tmp_path):
    model = build_model(MODELS.validate({"name": "small_cnn", "width": 4}), SPEC)
    state = model.state_dict()
    with pytest.raises(ConfigError, match=r"shape of stem\.0\.0\.weight"):
        load_foreign(state, "small_cnn", SPEC, options={"width": 8})
    broken = {("head.extra" if k == "fc.bias" else k): v for k, v in state.items()}
    with pytest.raises(ConfigError, match=r"missing fc\.bias; unexpected head\.extra"):
        load_foreign(broken, "small_cnn", SPEC, options={"width": 4})
    (tmp_path / "junk.pt").write_bytes(b"not a pytorch file")
    with pytest.raises(BackdoorlabError):
        read_state_dict(tmp_path / "junk.pt")


def test_a_factory_model_is_put_behind_the_normalisation(tmp_path):
    path = tmp_path / "netdef.py"
    path.write_text(
        "from torch import nn\n"
        "def make(k=10):\n"
        "    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4 * 30 * 30, k))\n"
    )
    net = load_foreign(
        {
            "0.weight": torch.zeros(4, 3, 3, 3),
            "0.bias": torch.zeros(4),
            "2.weight": torch.zeros(10, 3600),
            "2.bias": torch.arange(10.0),
        },
        f"{path}:make",
        SPEC,
        normalize=True,
    )
    assert isinstance(net, Normalized)
    assert net(torch.rand(2, 3, 32, 32)).argmax(1).tolist() == [9, 9]
    with pytest.raises(ConfigError, match="no function"):
        load_foreign({}, f"{path}:nope", SPEC)
