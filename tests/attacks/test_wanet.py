import pytest
import torch
import torch.nn.functional as F

from backdoorlab.attacks import ATTACKS, build_attack
from backdoorlab.attacks.wanet import identity_grid
from backdoorlab.data import InputSpec
from backdoorlab.train import Batch

SPEC = InputSpec(3, (16, 16), 10, (0.5,) * 3, (0.2,) * 3)


def wanet(**kw):
    return build_attack(ATTACKS.entry("wanet").config(name="wanet", **kw), SPEC)


def test_identity_grid_samples_the_image_itself():
    x = torch.rand(2, 3, 16, 16)
    out = F.grid_sample(x, identity_grid(16, 16).expand(2, -1, -1, -1), align_corners=True)
    assert torch.allclose(out, x, atol=1e-5)


def test_warp_is_small_smooth_and_fixed_by_seed():
    a = wanet()
    # control points have mean |value| 1; bicubic upsampling smooths between them
    assert 0.3 < a.noise_grid.abs().mean() < 1.5
    shift = (a.grid - a.identity).abs().max() * 16 / 2  # in pixels
    assert 0 < shift < 1.5
    x = torch.rand(4, 3, 16, 16)
    xt = a.trigger(x)
    assert xt.shape == x.shape and 0 < (xt - x).abs().mean() < 0.2
    assert torch.equal(wanet().noise_grid, a.noise_grid)
    assert not torch.equal(wanet(grid_seed=1).noise_grid, a.noise_grid)


def test_batch_mix_backdoor_noise_clean():
    a = wanet(rate=0.1, cross_ratio=2, target=7)
    hook = a.training_hooks()[0]
    x, y = torch.rand(50, 3, 16, 16), torch.arange(50) % 10
    out = hook.transform(None, Batch(x, y, torch.arange(50)))
    assert torch.allclose(out.x[:5], a.trigger(x[:5])) and torch.all(out.y[:5] == 7)
    assert not torch.allclose(out.x[5:15], a.trigger(x[5:15]))  # noise mode differs
    assert torch.equal(out.y[5:], y[5:]) and torch.equal(out.x[15:], x[15:])
    assert out.info["poisoned"] == 5 and out.info["noise"] == 10


def test_training_set_stays_clean_and_config_is_checked(tiny_config):
    from backdoorlab.experiment import run

    tiny_config["attack"] = {"name": "wanet", "rate": 0.2, "s": 2.0}
    result = run(tiny_config, save=False, progress=False)
    assert result.poisoned.count == 0 and result.metrics["asr"] is not None
    with pytest.raises(ValueError, match="must not exceed 1"):
        ATTACKS.entry("wanet").config(name="wanet", rate=0.5, cross_ratio=2)
    with pytest.raises(ValueError):
        ATTACKS.entry("wanet").config(name="wanet", label_mode="clean")
