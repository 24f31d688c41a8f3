import pytest
import torch

from backdoorlab.data import InputSpec
from backdoorlab.defenses.aft import label_concentration
from backdoorlab.experiment import run
from backdoorlab.models import MODELS, build_model
from backdoorlab.perturb.threats import LinfBall
from backdoorlab.train.perf import Performance


def small_model(num_classes=4):
    torch.manual_seed(0)
    cfg = MODELS.entry("small_cnn").config(name="small_cnn", width=8, stages=2)
    return build_model(cfg, InputSpec(3, (12, 12), num_classes, (0.5,) * 3, (0.25,) * 3)).eval()


def test_label_concentration_is_the_top_class_share():
    labels = torch.tensor([2, 2, 2, 1, 0, 2, 1, 2])
    assert label_concentration(labels) == pytest.approx(5 / 8)


def test_ft_and_aft_repair_the_cached_infected_model(tiny_config, tmp_path):
    """Every post-training defense of one attack config reuses one infected model."""
    cache = tmp_path / "cache"
    first = run(
        {**tiny_config, "defense": {"name": "ft", "epochs": 1}},
        cache=cache,
        save=False,
        progress=False,
    )
    info = first.metrics
    assert info.stage["from_cache"] is False
    assert len(list((cache / "infected").iterdir())) == 1
    for defense in (
        {"name": "aft", "epochs": 1, "steps": 2, "eps": 0.1},
        {
            "name": "aft",
            "data": "poisoned",
            "epochs": 1,
            "steps": 2,
            "eps": 0.1,
            "check_every": 2,
            "check_size": 64,
        },
    ):
        r = run({**tiny_config, "defense": defense}, cache=cache, save=False, progress=False)
        assert r.metrics.stage["from_cache"] is True
        assert r.metrics.stage["cache_key"] == info.stage["cache_key"]
        assert r.metrics.before == info.before  # the very same model
        curve = r.metrics.aft_curve
        assert curve[0]["step"] == 0 and all(0 <= p["acc"] <= 100 for p in curve)
    own = r.metrics.defense
    assert own["aft_stopped_at_step"] in {c["step"] for c in own["aft_checks"]}
    # a different attack setting is a different infected model
    other = {**tiny_config, "attack": {**tiny_config["attack"], "rate": 0.2}}
    r = run(
        {**other, "defense": {"name": "ft", "epochs": 1}}, cache=cache, save=False, progress=False
    )
    assert r.metrics.stage["from_cache"] is False
    assert len(list((cache / "infected").iterdir())) == 2


def test_training_time_defenses_do_not_use_the_infected_model_cache(tiny_config, tmp_path):
    cfg = {**tiny_config, "defense": {"name": "mixup"}}
    r = run(cfg, cache=tmp_path / "cache", save=False, progress=False)
    assert r.metrics.before is None and not (tmp_path / "cache" / "infected").exists()
    assert len(list((tmp_path / "cache" / "poisoned").iterdir())) == 1  # the poisoned set is


def test_early_stopping_keeps_the_least_concentrated_weights(monkeypatch):
    from types import SimpleNamespace

    from backdoorlab.defenses import aft
    from backdoorlab.defenses.aft import AFTConfig, _Watch
    from backdoorlab.defenses.base import DefenseContext

    model = small_model()
    cfg = AFTConfig(name="aft", data="poisoned", steps=1, eps=0.1, check_every=1)
    ctx = DefenseContext(train=None, train_config=None, device=torch.device("cpu"), seed=0)
    from backdoorlab.data.base import Dataset

    images = torch.randint(0, 256, (8, 3, 12, 12), dtype=torch.uint8)
    probe = Dataset("probe", images, torch.zeros(8, dtype=torch.int64), list("abcd"), (0.5,) * 3,
                    (0.25,) * 3)  # fmt: skip
    watch = _Watch(cfg, ctx, probe, LinfBall(0.1))
    shares = iter([0.9, 0.3, 0.6])  # what each check measures
    monkeypatch.setattr(aft, "label_concentration", lambda labels: next(shares))
    state = SimpleNamespace(model=model, step=0, perf=Performance())
    kept = {}
    for step in range(3):
        with torch.no_grad():
            model.fc.bias.fill_(float(step))  # weights that tell the steps apart
        state.step = step
        watch._check(state)
        kept[step] = model.fc.bias.clone()
    watch.on_fit_end(state)
    assert torch.equal(model.fc.bias, kept[1]) and watch.best[1] == 1
    assert [c["concentration"] for c in watch.checks] == [90.0, 30.0, 60.0]


def _crafting_calls(monkeypatch, options: dict, crop_padding: int = 0) -> list[tuple]:
    """Repair a toy model with AFT `options`; the (threat, keyword arguments) of each call to
    the untargeted PGD it makes."""
    from backdoorlab.data.base import Dataset
    from backdoorlab.defenses import DEFENSES, aft
    from backdoorlab.defenses.base import DefenseContext, build_defense
    from backdoorlab.train.config import TrainConfig

    seen = []
    real = aft.untargeted_examples

    def spy(model, data, threat, *args, **kwargs):
        seen.append((threat, kwargs))
        return real(model, data, threat, *args, **kwargs)

    monkeypatch.setattr(aft, "untargeted_examples", spy)
    torch.manual_seed(0)
    spec = InputSpec(1, (8, 8), 4, (0.5,), (0.25,))
    model = build_model(MODELS.validate({"name": "small_cnn", "width": 4, "stages": 1}), spec)
    images = torch.randint(0, 256, (64, 1, 8, 8), dtype=torch.uint8)
    data = Dataset("toy", images, torch.arange(64) % 4, [str(i) for i in range(4)], (0.5,), (0.25,))
    train = TrainConfig(epochs=1, eval_every=0, crop_padding=crop_padding)
    ctx = DefenseContext(train=data, train_config=train, device=torch.device("cpu"), seed=0,
                         clean=data)  # fmt: skip
    cfg = DEFENSES.validate({"name": "aft", "epochs": 1, "early_stop": False, **options})
    build_defense(cfg).repair(model, ctx)
    return seen


def test_aft_crafts_in_the_l2_ball_it_is_given_and_an_old_config_keeps_its_key(monkeypatch):
    from backdoorlab.defenses import DEFENSES
    from backdoorlab.perturb.threats import L2Ball

    plain = DEFENSES.validate({"name": "aft"})
    assert "norm" not in plain.model_dump()  # the AFT pages' cells keep their keys
    l2 = DEFENSES.validate({"name": "aft", "norm": "l2", "eps": 2.0})
    assert l2.model_dump()["norm"] == "l2"
    seen = _crafting_calls(monkeypatch, {"norm": "l2", "eps": 2.0, "steps": 2})
    assert isinstance(seen[0][0], L2Ball) and seen[0][0].eps == 2.0


@pytest.mark.parametrize("augment", [True, False])
def test_aft_without_clean_data_augments_the_poisoned_set_unless_told_not_to(monkeypatch, augment):
    """Mu et al. Table X: the data-augmentation ablation of AFT without clean data."""
    from backdoorlab.defenses import DEFENSES

    options = {"data": "poisoned", "steps": 1, "augment": augment}
    seen = _crafting_calls(monkeypatch, options, crop_padding=1)
    assert (seen[0][1]["augment"] is not None) == augment
    dumped = DEFENSES.validate({"name": "aft", **options}).model_dump()
    assert ("augment" in dumped) == (not augment)  # at its default, the keys hold
