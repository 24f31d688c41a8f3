import pytest
import torch

from backdoorlab.data import InputSpec
from backdoorlab.defenses.dpsgd import clip_per_sample, per_sample_grads
from backdoorlab.errors import ConfigError
from backdoorlab.experiment import run
from backdoorlab.models import MODELS, build_model


def group_model(name="small_cnn", **kw):
    torch.manual_seed(0)
    cfg = MODELS.entry(name).config(name=name, norm="group", **kw)
    return build_model(cfg, InputSpec(3, (12, 12), 4, (0.5,) * 3, (0.25,) * 3))


def test_per_sample_grads_match_one_backward_per_sample():
    model = group_model(width=8, stages=2)
    x, y = torch.rand(5, 3, 12, 12), torch.tensor([0, 1, 2, 3, 0])
    grads, losses, logits = per_sample_grads(model, x, y)
    for i in range(5):
        model.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x[i : i + 1]), y[i : i + 1])
        loss.backward()
        assert losses[i].item() == pytest.approx(loss.item(), rel=1e-5)
        for name, p in model.named_parameters():
            assert torch.allclose(grads[name][i], p.grad, atol=1e-6), name
    assert logits.shape == (5, 4)


def test_clipping_bounds_every_samples_gradient_norm():
    model = group_model(width=8, stages=2)
    x, y = torch.rand(8, 3, 12, 12) * 4, torch.arange(8) % 4
    grads, _, _ = per_sample_grads(model, x, y)

    def norms(g):
        return torch.sqrt(sum(v.flatten(1).pow(2).sum(1) for v in g.values()))

    before = norms(grads)
    for c in (0.01, 0.1, float(before.max()) * 2):
        after = norms(clip_per_sample(grads, c))
        assert (after <= c * (1 + 1e-5)).all()
        # samples already inside the bound are left as they were, the others scaled to c
        inside = before <= c
        assert torch.allclose(after[inside], before[inside], rtol=1e-5)
        assert torch.allclose(after[~inside], torch.full_like(after[~inside], c), rtol=1e-4)


@pytest.mark.parametrize("name,kw", [("small_cnn", {"width": 8}), ("resnet18", {}), ("wrn", {})])
def test_groupnorm_variant_keeps_parameter_shapes(name, kw):
    torch.manual_seed(0)
    spec = InputSpec(3, (12, 12), 4, (0.5,) * 3, (0.25,) * 3)
    bn = build_model(MODELS.entry(name).config(name=name, **kw), spec)
    gn = build_model(MODELS.entry(name).config(name=name, norm="group", **kw), spec)
    assert not any(isinstance(m, torch.nn.GroupNorm) for m in bn.modules())
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in gn.modules())
    groups = [m for m in gn.modules() if isinstance(m, torch.nn.GroupNorm)]
    assert groups and all(m.num_channels % m.num_groups == 0 for m in groups)
    assert {k: v.shape for k, v in bn.named_parameters()} == {
        k: v.shape for k, v in gn.named_parameters()
    }
    assert gn(torch.rand(2, 3, 12, 12)).shape == (2, 4)


def test_dpsgd_end_to_end_reports_epsilon(tiny_config):
    tiny_config["model"]["norm"] = "group"
    tiny_config["defense"] = {"name": "dpsgd", "noise_multiplier": 1.0}
    result = run(tiny_config, save=False, progress=False)
    m = result.metrics
    assert m.defense["dp_steps"] == 2 * 4  # 2 epochs of 256 / 64
    assert 0 < m.defense["dp_epsilon"] < float("inf") and m.defense["dp_delta"] == 1e-5


def test_dpsgd_on_a_batchnorm_model_is_one_clear_error(tiny_config):
    tiny_config["defense"] = {"name": "dpsgd"}
    with pytest.raises(ConfigError, match="model.norm"):
        run(tiny_config, save=False, progress=False)
