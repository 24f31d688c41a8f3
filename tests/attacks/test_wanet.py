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


def _uint8(x: torch.Tensor) -> torch.Tensor:
    return x.clamp(0, 1).mul(255).round().to(torch.uint8)


def test_data_control_stores_warped_and_noise_samples(synthetic):
    data = synthetic(size=16, train_size=200).train
    a = build_attack(
        ATTACKS.entry("wanet").config(name="wanet", rate=0.1, cross_ratio=2, target=1), data.spec
    )
    assert a.training_hooks() == []  # nothing of the attack runs in the victim's loop
    p = a.poison(data, torch.Generator().manual_seed(0))
    idx, cross = p.indices, p.cross
    assert len(idx) == 20 and len(cross) == 40
    assert not set(idx.tolist()) & set(cross.tolist())
    assert torch.equal(p.data.images[idx], _uint8(a.trigger(data.floats(idx))))
    assert torch.all(p.data.labels[idx] == 1) and torch.all(p.original_labels != 1)
    assert torch.equal(p.data.labels[cross], data.labels[cross])  # true labels
    noisy = p.data.images[cross]
    assert not torch.equal(noisy, data.images[cross])
    assert not torch.equal(noisy, _uint8(a.trigger(data.floats(cross))))  # jittered, not the key
    rest = torch.ones(len(data), dtype=torch.bool)
    rest[p.touched()] = False
    assert torch.equal(p.data.images[rest], data.images[rest])
    assert torch.equal(p.data.labels[rest], data.labels[rest])


class _State:
    def __init__(self, data):
        self.data = data


def test_training_control_mixes_each_batch_warping_before_augmentation(synthetic):
    from backdoorlab.data.iterator import Augment

    data = synthetic(size=16, train_size=50).train
    cfg = ATTACKS.entry("wanet").config(
        name="wanet", rate=0.1, cross_ratio=2, target=3, control="training"
    )
    a = build_attack(cfg, data.spec)
    (hook,) = a.training_hooks()
    idx = torch.arange(50)
    raw, y = data.floats(idx), data.labels.clone()
    out = hook.transform(_State(data), Batch(raw.clone(), y, idx))
    assert torch.allclose(out.x[:5], a.trigger(raw[:5])) and torch.all(out.y[:5] == 3)
    assert not torch.allclose(out.x[5:15], a.trigger(raw[5:15]))  # noise mode differs
    assert torch.equal(out.y[5:], y[5:]) and torch.equal(out.x[15:], raw[15:])
    assert out.info["poisoned"] == 5 and out.info["noise"] == 10

    augment = Augment(crop_padding=2)
    choices = augment.draw(50, torch.Generator().manual_seed(1))

    def again(x, rows):
        return augment.apply(x, tuple(c[rows] for c in choices if c is not None) + (None,))

    batch = Batch(augment.apply(raw, choices), y, idx, augment=again)
    out = hook.transform(_State(data), batch)
    warp_then_crop = augment.apply(a.trigger(raw[:5]), tuple(c[:5] for c in choices[:2]) + (None,))
    crop_then_warp = a.trigger(batch.x[:5])
    assert torch.allclose(out.x[:5], warp_then_crop)
    assert not torch.allclose(out.x[:5], crop_then_warp)
    assert torch.equal(out.x[15:], batch.x[15:])


def test_victim_loop_holds_attack_hooks_only_under_training_control(tiny_config, monkeypatch):
    import backdoorlab.experiment.runner as runner
    from backdoorlab.attacks.wanet import WaNetBatch

    seen = []
    real_fit = runner.fit

    def spy(model, data, cfg, hooks, **kw):
        seen.append([type(h) for h in hooks])
        return real_fit(model, data, cfg, hooks, **kw)

    monkeypatch.setattr(runner, "fit", spy)
    tiny_config["train"]["epochs"] = 1
    tiny_config["attack"] = {"name": "wanet", "rate": 0.2, "cross_ratio": 1, "s": 2.0}
    data_mode = runner.run(tiny_config, save=False, progress=False)
    tiny_config["attack"]["control"] = "training"
    training_mode = runner.run(tiny_config, save=False, progress=False)
    assert WaNetBatch not in seen[0] and WaNetBatch in seen[1]
    assert data_mode.poisoned.count == round(0.2 * 256) and len(data_mode.poisoned.cross) == 51
    assert training_mode.poisoned.count == 0 and training_mode.metrics.asr is not None


def test_config_is_checked():
    with pytest.raises(ValueError, match="must not exceed 1"):
        ATTACKS.entry("wanet").config(name="wanet", rate=0.5, cross_ratio=2)
    with pytest.raises(ValueError):
        ATTACKS.entry("wanet").config(name="wanet", label_mode="clean")
