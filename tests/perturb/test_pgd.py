import pytest
import torch

from backdoorlab.perturb import (
    AffineParams,
    FlowField,
    L2Ball,
    LinfBall,
    Perturbation,
    PerturbBatch,
    pgd,
)
from backdoorlab.train import Batch


class Linear(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.fc = torch.nn.Linear(3 * 8 * 8, 4)

    def forward(self, x):
        return self.fc(x.flatten(1))


@pytest.mark.parametrize("threat", [LinfBall(0.05), L2Ball(0.5), FlowField(0.1), AffineParams(0.1)])
def test_pgd_increases_the_loss_and_stays_in_the_ball(threat):
    model = Linear()
    x, y = torch.rand(32, 3, 8, 8), torch.randint(0, 4, (32,))
    loss = torch.nn.functional.cross_entropy
    adv = pgd(model, x, y, threat, steps=10, alpha=threat.eps / 4)
    assert loss(model(adv), y) > loss(model(x), y)
    assert adv.min() >= 0 and adv.max() <= 1
    if isinstance(threat, LinfBall):
        assert (adv - x).abs().max() <= 0.05 + 1e-6


def test_perturbation_beta_zero_is_random_and_recipe_composes():
    model = Linear()
    x, y = torch.rand(8, 3, 8, 8), torch.randint(0, 4, (8,))
    out = Perturbation(LinfBall(0.1), beta=0.0)(model, torch.full_like(x, 0.5), y)
    assert torch.allclose((out - 0.5).abs(), torch.full_like(out, 0.1), atol=1e-6)
    recipe = PerturbBatch(
        [
            Perturbation(FlowField(0.05), steps=2, beta=0.8),
            Perturbation(LinfBall(4 / 255), steps=2, beta=0.8),
        ]
    )

    from types import SimpleNamespace

    from backdoorlab.train.perf import Performance

    state = SimpleNamespace(model=model, perf=Performance())
    b = recipe.transform(state, Batch(x, y, torch.arange(8)))
    assert b.x.shape == x.shape and not b.x.requires_grad and torch.equal(b.y, y)
    assert 0 < (b.x - x).abs().max() and b.x.min() >= 0 and b.x.max() <= 1


def test_crafting_leaves_bn_mode_and_weights_untouched():
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3),
        torch.nn.BatchNorm2d(4),
        torch.nn.Flatten(),
        torch.nn.LazyLinear(4),
    )
    model(torch.rand(2, 3, 8, 8))
    model.train()
    stats = model[1].running_mean.clone()
    pgd(model, torch.rand(4, 3, 8, 8), torch.zeros(4, dtype=torch.long), LinfBall(0.1), 3, 0.05)
    assert model.training and torch.equal(model[1].running_mean, stats)
    assert all(p.grad is None for p in model.parameters())


def test_crafting_freezes_the_parameters_and_gives_them_back_even_on_error():
    model = Linear()
    model.fc.bias.requires_grad_(False)  # a parameter the caller froze stays frozen
    seen = []

    def loss(logits, y):
        seen.append([p.requires_grad for p in model.parameters()])
        return torch.nn.functional.cross_entropy(logits, y)

    x, y = torch.rand(4, 3, 8, 8), torch.zeros(4, dtype=torch.long)
    pgd(model, x, y, LinfBall(0.1), 2, 0.05, loss=loss)
    assert seen == [[False, False], [False, False]]
    assert [p.requires_grad for p in model.parameters()] == [True, False]

    def broken(logits, y):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        pgd(model, x, y, LinfBall(0.1), 2, 0.05, loss=broken)
    assert [p.requires_grad for p in model.parameters()] == [True, False]


@pytest.mark.parametrize("threat", [LinfBall(0.3), L2Ball(2.0)])
def test_relaxation_clips_once_after_mixing_on_saturated_pixels(threat):
    from backdoorlab.perturb.pgd import pgd_delta

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(48, 3))
    x = torch.zeros(6, 3, 4, 4)
    x[3:] = 1.0  # black and white images: every pixel saturated
    y = torch.arange(6) % 3
    beta, perturb = 0.8, Perturbation(threat, steps=3, beta=0.8)
    torch.manual_seed(5)
    out = perturb(model, x, y)
    torch.manual_seed(5)  # the same draws: the random corner first, then PGD's start
    v = threat.corners(x)
    u = pgd_delta(model, x, y, threat, 3, 2.5 * threat.eps / 3)
    paper = (x + beta * u + (1 - beta) * v).clamp(0, 1)  # Gao et al. Sec. III-E
    assert torch.allclose(out, paper, atol=1e-6)
    clipped_first = (x + beta * u + (1 - beta) * threat.project(v, x)).clamp(0, 1)
    assert not torch.allclose(out, clipped_first, atol=1e-3)  # the old order differs here
