"""The contract every registered defense keeps, as tests/attacks/test_suite.py does for attacks.

Training with a defense's hooks and repairing with it: both are a deterministic function of the
seed, leave the defender's data as they found it, never read the attack's bookkeeping (the ground
truth only metrics may use), and give a model that maps [0, 1] images to finite logits; the
defense's own numbers are plain JSON.
"""

from __future__ import annotations

import copy
import json

import pytest
import torch

from backdoorlab.defenses import DEFENSES, DefenseContext, build_defense
from backdoorlab.models import MODELS, build_model
from backdoorlab.train.config import TrainConfig
from backdoorlab.train.loop import fit

SMALL = {  # every registered defense, at a budget of seconds
    "none": {},
    "at": {"eps": 0.1, "steps": 1},
    "random": {"eps": 0.1},
    "cat": {"steps": 1},
    "mixup": {},
    "cutmix": {},
    "dpsgd": {},
    "abl": {"isolation_epochs": 1, "isolation_ratio": 0.1, "unlearning_epochs": 1},
    "ft": {"epochs": 1},
    "aft": {"steps": 1, "epochs": 1, "check_size": 32},
    "fp": {"epochs": 1, "step": 0.25},
    "nad": {"teacher_epochs": 1, "epochs": 1},
    "nc": {"steps": 2, "batches_per_step": 1, "batch_size": 32, "epochs": 1},
    "auto": {"references": 3, "rounds": 1, "plan": ["ft"], "options": {"epochs": 1}, "force": True},
}
MODEL = {"dpsgd": {"norm": "group"}}  # per-sample gradients need per-sample normalisation
TRAIN = TrainConfig(epochs=1, batch_size=64, lr=0.05, eval_every=0)


def test_every_defense_is_in_the_suite():
    assert set(SMALL) == set(DEFENSES.names())


@pytest.fixture(scope="module")
def splits(synthetic):
    return synthetic(train_size=192, test_size=32)


def _defended(name: str, splits, truth: list[int], seed: int = 3):
    """A model trained with the defense's hooks, then repaired by it; the context it saw.
    `truth` is what the context's audit says the attack poisoned."""
    torch.manual_seed(0)
    arch = {"name": "small_cnn", "width": 8, "stages": 2, **MODEL.get(name, {})}
    model = build_model(MODELS.validate(arch), splits.train.spec)
    train = splits.train
    clean = train.subset(torch.arange(96, 192))
    ctx = DefenseContext(
        train=train, train_config=TRAIN, device=torch.device("cpu"), seed=seed,
        clean=clean, audit=lambda: torch.tensor(truth),
    )  # fmt: skip
    defense = build_defense(DEFENSES.entry(name).config(name=name, **SMALL[name]))
    fit(model, train, TRAIN, defense.training_hooks(ctx), seed=seed, progress=False)
    return defense.repair(model, ctx), ctx, defense


@pytest.mark.parametrize("name", sorted(SMALL))
def test_defending_is_deterministic_keeps_the_data_and_gives_finite_logits(name, splits):
    before = copy.deepcopy((splits.train.images, splits.train.labels))
    a, ctx, _ = _defended(name, splits, [0, 5, 9])
    b, ctx_b, _ = _defended(name, splits, [1, 2, 3, 4])  # what the attack did steers nothing
    assert torch.equal(ctx.train.images, before[0]) and torch.equal(ctx.train.labels, before[1])
    x = splits.test.floats()
    with torch.no_grad():
        out_a, out_b = a.eval()(x), b.eval()(x)
    assert out_a.shape == (len(x), splits.train.spec.num_classes)
    assert torch.isfinite(out_a).all()
    assert torch.equal(out_a, out_b)  # same seed, same defended model
    json.dumps(ctx.findings)  # the defense's own numbers are stored as JSON
    if name == "abl":  # its isolation precision is the one number that reads the truth
        assert ctx.findings["abl_isolated"] == ctx_b.findings["abl_isolated"] == 20  # 10% of 192
        assert "abl_precision" in ctx.findings and "abl_precision" in ctx_b.findings
