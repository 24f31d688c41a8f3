import pytest
import torch

from backdoorlab.errors import ConfigError
from backdoorlab.models import MODELS, Classifier, InputSpec, Normalize, build_model


def build(name, **kw):
    spec = kw.pop("spec", InputSpec(3, (32, 32), 10, (0.5, 0.4, 0.3), (0.2, 0.2, 0.2)))
    return build_model(MODELS.entry(name).config(name=name, **kw), spec)


@pytest.mark.parametrize("name", ["small_cnn", "resnet18", "preact_resnet18", "wrn16_1"])
@pytest.mark.parametrize("channels,size,classes", [(1, 28, 10), (3, 20, 43)])
def test_any_input_shape_and_class_count(name, channels, size, classes):
    spec = InputSpec(channels, (size, size), classes, (0.5,) * channels, (0.25,) * channels)
    m = build(name, spec=spec).eval()
    x = torch.rand(2, channels, size, size)
    assert m(x).shape == (2, classes)
    f = m.features(x)
    assert f.ndim == 2 and torch.allclose(m.fc(f), m(x), atol=1e-5)
    assert len(m.group_outputs(x)) == len(m.groups) >= 2


def test_reference_shapes():
    r18 = build("resnet18")
    assert sum(p.numel() for p in r18.parameters()) == pytest.approx(11.17e6, rel=0.01)
    outs = r18.group_outputs(torch.rand(1, 3, 32, 32))
    assert [tuple(o.shape[1:]) for o in outs] == [
        (64, 32, 32),
        (128, 16, 16),
        (256, 8, 8),
        (512, 4, 4),
    ]
    wrn = build("wrn16_1")
    assert [o.shape[1] for o in wrn.group_outputs(torch.rand(1, 3, 32, 32))] == [16, 32, 64]
    assert wrn.features(torch.rand(1, 3, 32, 32)).shape == (1, 64)
    pre = build("preact_resnet18")
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in pre.head.modules())


def test_normalisation_is_the_first_layer():
    m = build("small_cnn")
    assert isinstance(m.normalize, Normalize) and isinstance(m, Classifier)
    x = torch.rand(1, 3, 32, 32)
    manual = (x - torch.tensor([0.5, 0.4, 0.3]).view(1, 3, 1, 1)) / 0.2
    assert torch.allclose(m.normalize(x), manual)
    assert "normalize.mean" in m.state_dict()


def test_wrn_depth_is_validated():
    with pytest.raises(ValueError, match="6n\\+4"):
        MODELS.entry("wrn").config(name="wrn", depth=15)
    assert len(build("wrn", depth=22).groups[0]) == 3


def test_user_model_registers_with_the_same_decorator():
    from backdoorlab.models import register_model

    @register_model("test_linear")
    class Linear(Classifier):
        """A linear probe."""

        def __init__(self, cfg, spec):
            super().__init__()
            self.normalize = Normalize(spec.mean, spec.std)
            self.stem = torch.nn.Identity()
            self.groups = torch.nn.ModuleList([torch.nn.Identity(), torch.nn.Identity()])
            self.head = torch.nn.Flatten()
            self.fc = torch.nn.Linear(spec.channels * spec.size[0] * spec.size[1], spec.num_classes)

    assert "test_linear" in MODELS
    assert build("test_linear")(torch.rand(2, 3, 32, 32)).shape == (2, 10)


@pytest.mark.parametrize("channels,size", [(1, 28), (3, 32), (1, 12)])
def test_lenet_flattens_every_position_into_its_head(channels, size):
    spec = InputSpec(channels, (size, size), 10, (0.5,) * channels, (0.25,) * channels)
    m = build("lenet", spec=spec).eval()
    x = torch.rand(2, channels, size, size)
    assert m(x).shape == (2, 10)
    assert m.features(x).shape == (2, 84) and torch.allclose(m.fc(m.features(x)), m(x))
    side = (size // 2 - 4) // 2
    assert m.head[1].in_features == 16 * side * side
    assert not any(isinstance(k, torch.nn.AdaptiveAvgPool2d) for k in m.modules())


def test_lenet_has_lenet_5s_parameter_count_on_mnist():
    m = build("lenet", spec=InputSpec(1, (28, 28), 10, (0.13,), (0.31,)))
    # conv 6x(1x5x5+1), conv 16x(6x5x5+1), fc 400x120, 120x84, 84x10 (with biases)
    assert sum(p.numel() for p in m.parameters()) == 156 + 2416 + 48120 + 10164 + 850


def test_lenet_refuses_images_too_small_for_two_5x5_stages():
    with pytest.raises(ConfigError, match="12x12"):
        build("lenet", spec=InputSpec(1, (8, 8), 10, (0.5,), (0.25,)))
