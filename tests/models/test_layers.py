"""Layers of any classifier by name: the default block Fine-Pruning and NAD act on."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from backdoorlab.data.base import InputSpec
from backdoorlab.errors import ConfigError
from backdoorlab.models import MODELS, build_model
from backdoorlab.models.layers import capture, default_layer, last_conv, module_named


class TwoParts(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Conv2d(4, 6, 3), nn.ReLU())
        self.classifier = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 3))

    def forward(self, x):
        return self.classifier(self.features(x))


def test_the_default_layer_is_the_last_conv_block_before_pooling():
    x = torch.rand(2, 1, 12, 12)
    assert default_layer(TwoParts(), x) == "features"
    flat = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Conv2d(4, 5, 3), nn.Flatten(),
                         nn.Linear(5 * 8 * 8, 3))  # fmt: skip
    assert default_layer(flat, x) == "2"
    spec = InputSpec(3, (32, 32), 10, (0.5,) * 3, (0.5,) * 3)
    r18 = build_model(MODELS.validate({"name": "preact_resnet18", "width": 4}), spec)
    assert default_layer(r18, torch.rand(2, 3, 32, 32)) == "groups.3"
    with pytest.raises(ConfigError, match="no convolutional block"):
        default_layer(nn.Sequential(nn.Flatten(), nn.Linear(144, 3)), x)


def test_layers_by_name_or_unique_suffix_and_their_outputs():
    model = TwoParts()
    assert module_named(model, "features.2") is model.features[2]
    assert last_conv(module_named(model, "features")) is model.features[2]
    with pytest.raises(ConfigError, match="modules: features"):
        module_named(model, "layer4")
    x = torch.rand(2, 1, 12, 12)
    with capture(model, ["features"]) as out:
        logits = model(x)
    assert out["features"].shape == (2, 6, 8, 8)
    assert torch.allclose(logits, model.classifier(out["features"]))
    assert not model.features._forward_hooks  # hooks are gone after the block
