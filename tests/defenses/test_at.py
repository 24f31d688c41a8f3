import pytest
import torch

from backdoorlab.defenses import DEFENSES, DefenseContext, build_defense
from backdoorlab.experiment import run
from backdoorlab.perturb import FlowField, LinfBall, PerturbBatch
from backdoorlab.train import TrainConfig


def hooks(name, **kw):
    d = build_defense(DEFENSES.validate({"name": name, **kw}))
    return d.training_hooks(
        DefenseContext(train=None, train_config=TrainConfig(), device=torch.device("cpu"), seed=0)
    )


def test_registered():
    assert {"at", "random", "cat", "none"} <= set(DEFENSES.names())


def test_recipes_have_the_papers_defaults():
    (cat,) = hooks("cat")
    assert isinstance(cat, PerturbBatch) and len(cat.perturbations) == 2
    spatial, linf = cat.perturbations
    assert isinstance(spatial.threat, FlowField) and spatial.threat.eps == 0.05
    assert isinstance(linf.threat, LinfBall) and linf.threat.eps == pytest.approx(4 / 255)
    assert spatial.beta == linf.beta == 0.8
    (rand,) = hooks("random", threat="spatial", eps=0.1)
    assert rand.perturbations[0].beta == 0.0
    (at,) = hooks("at", threat="l2", eps=0.5, beta=0.9)
    assert at.perturbations[0].threat.eps == 0.5 and at.perturbations[0].beta == 0.9


@pytest.mark.parametrize(
    "defense",
    [
        {"name": "at", "threat": "linf", "eps": 0.1, "steps": 2},
        {"name": "at", "threat": "spatial", "eps": 0.05, "steps": 2},
        {"name": "random", "threat": "l2", "eps": 0.5},
        {"name": "cat", "steps": 2},
    ],
)
def test_each_defense_end_to_end(tiny_config, defense):
    tiny_config["defense"] = defense
    tiny_config["train"]["epochs"] = 1
    result = run(tiny_config, save=False, progress=False)
    assert 0 <= result.metrics.acc <= 100 and 0 <= result.metrics.asr <= 100
    assert result.config.defense.name == defense["name"]
