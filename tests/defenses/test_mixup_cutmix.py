import pytest
import torch

from backdoorlab.defenses import DEFENSES, DefenseContext, build_defense
from backdoorlab.experiment import run
from backdoorlab.train import Batch, TrainConfig


def hook(name, **kw):
    d = build_defense(DEFENSES.validate({"name": name, **kw}))
    (h,) = d.training_hooks(
        DefenseContext(train=None, train_config=TrainConfig(), device=torch.device("cpu"), seed=0)
    )
    return h


def batch(n=16, size=8):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(n, 3, size, size, generator=g)
    return Batch(x, torch.arange(n) % 4, torch.arange(n))


def ce(logits, y):
    return torch.nn.functional.cross_entropy(logits, y, reduction="none")


@pytest.mark.parametrize("name", ["mixup", "cutmix"])
def test_label_weights_sum_to_one_and_loss_mixes_the_two_cross_entropies(name):
    h, b = hook(name), batch()
    for _ in range(5):
        out = h.transform(None, b)
        w1, w2 = out.info["weights"]
        assert torch.allclose(w1 + w2, torch.ones(16)) and (w1 >= 0).all() and (w2 >= 0).all()
        assert out.x.shape == b.x.shape and 0 <= out.x.min() and out.x.max() <= 1
        logits = torch.randn(16, 4)
        y2 = b.y[out.info["perm"]]
        expected = (w1 * ce(logits, b.y) + w2 * ce(logits, y2)).mean()
        assert out.loss(logits).item() == pytest.approx(expected.item(), rel=1e-5)


def test_mixup_is_the_convex_combination():
    h, b = hook("mixup"), batch()
    out = h.transform(None, b)
    lam, perm = out.info["lam"], out.info["perm"]
    assert 0 <= lam <= 1
    assert torch.allclose(out.x, lam * b.x + (1 - lam) * b.x[perm])


def test_cutmix_weight_is_the_exact_pixel_share():
    h = hook("cutmix")
    n, size = 16, 10
    # every image one constant value, so the pixels pasted from a partner are countable
    x = torch.arange(n, dtype=torch.float32).div(n).view(n, 1, 1, 1).expand(n, 3, size, size)
    b = Batch(x.clone(), torch.arange(n) % 4, torch.arange(n))
    checked = 0
    for _ in range(10):
        out = h.transform(None, b)
        for i in range(n):
            if out.info["perm"][i] == i:
                continue
            own = (out.x[i] == b.x[i]).all(0).float().mean().item()
            assert out.info["lam"] == pytest.approx(own, abs=1e-6)
            assert out.info["weights"][0][i].item() == pytest.approx(own, abs=1e-6)
            checked += 1
    assert checked > 100


def test_prob_zero_leaves_batches_alone():
    b = batch()
    assert hook("mixup", prob=0.0).transform(None, b) is b


@pytest.mark.parametrize("name", ["mixup", "cutmix"])
def test_end_to_end(tiny_config, name):
    tiny_config["defense"] = {"name": name}
    result = run(tiny_config, save=False, progress=False)
    assert 0 <= result.metrics.acc <= 100
