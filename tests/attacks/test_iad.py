import pytest
import torch

from backdoorlab.attacks import ATTACKS, build_attack
from backdoorlab.train import Batch


@pytest.fixture(scope="module")
def data(synthetic):
    return synthetic(size=16, train_size=128, test_size=32).train


def iad(spec, **kw):
    kw.setdefault("width", 4)
    return build_attack(ATTACKS.entry("iad").config(name="iad", **kw), spec)


def test_trigger_is_input_specific_and_in_range(data):
    a = iad(data.spec, mask_epochs=1, batch_size=32, control="training")
    a.fit(data)
    x = data.floats(torch.arange(8))
    with torch.no_grad():
        m, p = a.mask(x), a.pattern(x)
    assert m.shape == (8, 1, 16, 16) and p.shape == x.shape
    assert 0 <= m.min() and m.max() <= 1 and 0 <= p.min() and p.max() <= 1
    xt = a.trigger(x)
    assert torch.allclose(xt, x + (p - x) * m, atol=1e-6)
    assert not a.generator.training and not a.masker.training
    d = (xt - x).flatten(1)
    assert not torch.allclose(d[0], d[1])  # different inputs, different triggers
    assert not any(q.requires_grad for q in a.masker.parameters())


def test_stage_one_shrinks_the_mask_towards_its_density(data):
    a = iad(data.spec, mask_epochs=0)
    x = data.floats(torch.arange(32))
    before = a.mask(x).mean().item()
    trained = iad(data.spec, mask_epochs=3, batch_size=32, lambda_div=0.0, control="training")
    trained.fit(data)
    after = trained.mask(x).mean().item()
    assert after < before and after < 0.2


def test_density_loss_is_the_mean_of_the_excess_over_the_density():
    from backdoorlab.attacks.iad import density_loss

    m = torch.tensor([0.0, 0.5, 1.0, 0.02]).view(1, 1, 2, 2)
    expected = (0.5 - 0.032 + 1.0 - 0.032) / 4  # mean(relu(m - d)): only excesses count
    assert density_loss(m, 0.032).item() == pytest.approx(expected)
    # relu(mean(m) - d) would be 0.3475; the two differ whenever some values lie below d
    assert density_loss(m, 0.032).item() != pytest.approx((m.mean() - 0.032).item())
    assert density_loss(torch.full((1, 1, 2, 2), 0.01), 0.032).item() == 0


def test_diversity_has_a_finite_gradient_when_two_masks_are_equal():
    from backdoorlab.attacks.iad import diversity

    x1, x2 = torch.zeros(2, 1, 4, 4), torch.ones(2, 1, 4, 4)
    g1 = torch.full((2, 1, 4, 4), 0.5, requires_grad=True)
    g2 = torch.full((2, 1, 4, 4), 0.5)  # saturated masks can be exactly equal
    loss = diversity(x1, x2, g1, g2)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(g1.grad).all()
    g3 = torch.full((2, 1, 4, 4), 0.25)
    # away from equality it is the original's ||x1 - x2|| / (||g1 - g2|| + eps)
    assert diversity(x1, x2, g3, g2).item() == pytest.approx(1.0 / 0.25, rel=1e-5)


def test_data_control_trains_its_own_surrogate_and_stores_the_poisoned_set(data):
    cfg = {"epochs": 1, "batch_size": 32, "lr": 0.05}
    surrogate = {"model": {"name": "small_cnn", "width": 4, "stages": 2}, "train": cfg}
    a = iad(data.spec, mask_epochs=1, batch_size=32, target=2, surrogate=surrogate)
    assert a.training_hooks() == []
    before = [q.clone() for q in a.generator.parameters()]
    a.fit(data)
    trained = zip(before, a.generator.parameters(), strict=True)
    assert any(not torch.equal(p, q) for p, q in trained)  # stage 2 ran on the surrogate
    p = a.poison(data, torch.Generator().manual_seed(0))
    idx, cross = p.indices, p.cross
    assert len(idx) == round(0.1 * 128) and len(cross) == round(0.1 * 128)
    assert not set(idx.tolist()) & set(cross.tolist())
    x = data.floats(idx)
    own = a.trigger(x).clamp(0, 1).mul(255).round().to(torch.uint8)
    assert torch.equal(p.data.images[idx], own) and torch.all(p.data.labels[idx] == 2)
    assert torch.equal(p.data.labels[cross], data.labels[cross])
    xc = data.floats(cross)
    assert not torch.equal(p.data.images[cross], data.images[cross])
    # another image's trigger: inside its mask the pixels are that image's pattern, not ours
    stored = p.data.images[cross].float() / 255
    assert not torch.allclose(stored, a.trigger(xc).clamp(0, 1), atol=1 / 255)
    rest = torch.ones(len(data), dtype=torch.bool)
    rest[p.touched()] = False
    assert torch.equal(p.data.images[rest], data.images[rest])


def test_training_control_keeps_the_per_batch_procedure(data):
    a = iad(data.spec, mask_epochs=0, control="training")
    (hook,) = a.training_hooks()
    assert type(hook).__name__ == "IADBatch"
    assert a.poison(data, torch.Generator()).count == 0


def test_batch_recipe_mixes_backdoor_cross_clean_and_trains_generator(data):
    from backdoorlab.models import MODELS, build_model
    from backdoorlab.train import TrainConfig, fit

    a = iad(data.spec, mask_epochs=0, rate=0.25, cross_rate=0.25, target=3, control="training")
    model = build_model(MODELS.validate({"name": "small_cnn", "width": 8, "stages": 2}), data.spec)
    hook = a.training_hooks()[0]
    before = [p.clone() for p in a.generator.parameters()]
    state = fit(model, data, TrainConfig(epochs=1, batch_size=32), [hook], progress=False)
    assert state.step == 4
    assert any(not torch.equal(p, q) for p, q in zip(before, a.generator.parameters(), strict=True))
    y = torch.arange(8) % 4
    batch = Batch(data.floats(torch.arange(8)), y.clone(), torch.arange(8))
    hook.train_step(state, batch)
    assert batch.y[:2].tolist() == [3, 3] and torch.equal(batch.y[2:], y[2:])


def test_state_round_trip(data):
    a, b = iad(data.spec, mask_epochs=0), iad(data.spec, mask_epochs=0, target=1)
    x = data.floats(torch.arange(4))
    assert not torch.allclose(a.trigger(x), b.trigger(x))
    b.load_state(a.state())
    assert torch.allclose(a.trigger(x), b.trigger(x))
