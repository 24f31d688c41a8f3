"""Our PGD is at least as strong as torchattacks' at the same settings (trained MNIST model).

Both attacks start from the clean images (no random start): two deterministic procedures are
compared, so the test cannot flake on the draw of two random starts.
"""

import pytest
import torch

from backdoorlab.data import DATASETS, load_dataset
from backdoorlab.models import MODELS, build_model
from backdoorlab.perturb import L2Ball, LinfBall, pgd
from backdoorlab.train import TrainConfig, fit

torchattacks = pytest.importorskip("torchattacks", reason="dev dependency (make test installs it)")


@pytest.fixture(scope="module")
def trained(mnist_dir):
    cfg = DATASETS.entry("mnist").config(
        name="mnist", root=str(mnist_dir), train_size=3000, test_size=2000
    )
    s = load_dataset(cfg, seed=0)
    torch.manual_seed(0)
    model = build_model(MODELS.validate({"name": "small_cnn", "width": 16}), s.train.spec)
    fit(model, s.train, TrainConfig(epochs=3, batch_size=128, lr=0.05), progress=False)
    return model.eval(), s.test


def robust_accuracy(model, x, y):
    with torch.no_grad():
        return 100.0 * (model(x).argmax(1) == y).float().mean().item()


@pytest.mark.parametrize("norm,eps,alpha", [("linf", 0.1, 0.02), ("l2", 1.5, 0.3)])
def test_robust_accuracy_no_higher_than_torchattacks(trained, norm, eps, alpha):
    model, test = trained
    x, y = test.floats()[:1000], test.labels[:1000]  # half the test split: half the cost
    assert robust_accuracy(model, x, y) > 95
    if norm == "linf":
        ours = pgd(model, x, y, LinfBall(eps), 10, alpha, random_start=False)
        theirs = torchattacks.PGD(model, eps=eps, alpha=alpha, steps=10, random_start=False)(x, y)
        assert (ours - x).abs().max() <= eps + 1e-6
    else:
        ours = pgd(model, x, y, L2Ball(eps), 10, alpha, random_start=False)
        attack = torchattacks.PGDL2(model, eps=eps, alpha=alpha, steps=10, random_start=False)
        theirs = attack(x, y)
        assert (ours - x).flatten(1).norm(dim=1).max() <= eps + 1e-4
    assert ours.min() >= 0 and ours.max() <= 1
    ra_ours, ra_theirs = robust_accuracy(model, ours, y), robust_accuracy(model, theirs, y)
    assert ra_ours <= ra_theirs + 0.5, (ra_ours, ra_theirs)
    assert ra_ours < 80  # the attack does something at this budget
