import pytest
import torch

from backdoorlab.data import DATASETS, load_dataset
from backdoorlab.errors import TrainingDivergedError
from backdoorlab.models import MODELS, build_model
from backdoorlab.train import Batch, Hook, TrainConfig, build_optimizer, build_scheduler, fit
from backdoorlab.train.loop import _check_collapse


@pytest.fixture(scope="module")
def splits():
    cfg = DATASETS.entry("synthetic").config(
        name="synthetic", num_classes=4, size=12, train_size=256, test_size=64
    )
    return load_dataset(cfg)


def model_for(data, seed=0):
    torch.manual_seed(seed)
    return build_model(
        MODELS.entry("small_cnn").config(name="small_cnn", width=8, stages=2), data.spec
    )


def test_learns_and_records_history(splits):
    m = model_for(splits.train)
    state = fit(m, splits.train, TrainConfig(epochs=4, batch_size=32, lr=0.05), progress=False)
    assert [r["epoch"] for r in state.history] == [1, 2, 3, 4]
    assert state.history[-1]["loss"] < state.history[0]["loss"]
    assert state.history[-1]["train_acc"] > 90
    assert state.step == 4 * 8 and not m.training


def test_same_seed_same_weights(splits):
    cfg = TrainConfig(epochs=1, batch_size=32, crop_padding=2, flip=True)
    a, b = model_for(splits.train), model_for(splits.train)
    fit(a, splits.train, cfg, seed=3, progress=False)
    fit(b, splits.train, cfg, seed=3, progress=False)
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q)


@pytest.mark.parametrize(
    "schedule,check",
    [
        ("step", lambda lrs: lrs[9] == pytest.approx(0.1) and lrs[10] == pytest.approx(0.01)),
        ("cosine", lambda lrs: lrs[0] == pytest.approx(0.1) and lrs[-1] < 0.01),
        ("onecycle", lambda lrs: max(lrs) == pytest.approx(0.1, rel=0.05) and lrs[0] < 0.01),
        ("constant", lambda lrs: set(lrs) == {0.1}),
    ],
)
def test_schedules_step_per_batch(schedule, check):
    cfg = TrainConfig(
        epochs=4, lr=0.1, schedule=schedule, milestones=[2] if schedule == "step" else []
    )
    opt = build_optimizer(torch.nn.Linear(2, 2), cfg)
    sched = build_scheduler(opt, cfg, steps_per_epoch=5)
    lrs = []
    for _ in range(20):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert check(lrs)


def test_hooks_transform_batches_and_see_every_event(splits):
    events = []

    class Recorder(Hook):
        def on_fit_start(self, state):
            events.append("fit_start")

        def on_epoch_start(self, state):
            events.append("epoch_start")

        def transform(self, state, batch):
            # a recipe: train on inverted images with a label-smoothing loss
            smoothed = torch.nn.functional.cross_entropy
            return Batch(
                1 - batch.x,
                batch.y,
                batch.idx,
                loss=lambda logits: smoothed(logits, batch.y, label_smoothing=0.1),
            )

        def on_step_end(self, state, batch, loss):
            assert torch.all(batch.x <= 1) and loss.ndim == 0
            events.append("step")

        def on_epoch_end(self, state, record):
            record["custom"] = 1.0
            state.stop = True

        def on_fit_end(self, state):
            events.append("fit_end")

    state = fit(
        model_for(splits.train),
        splits.train,
        TrainConfig(epochs=3, batch_size=64),
        [Recorder()],
        progress=False,
    )
    assert events == ["fit_start", "epoch_start"] + ["step"] * 4 + ["fit_end"]
    assert len(state.history) == 1 and state.history[0]["custom"] == 1.0


def test_train_step_hook_replaces_the_step(splits):
    calls = []

    class OwnStep(Hook):
        def train_step(self, state, batch):
            calls.append(len(batch.y))
            logits = state.model(batch.x)
            loss = logits.logsumexp(1).mean()
            loss.backward()
            return loss.detach(), logits.detach()

    fit(
        model_for(splits.train),
        splits.train,
        TrainConfig(epochs=1, batch_size=100),
        [OwnStep()],
        progress=False,
    )
    assert calls == [100, 100, 56]


def test_divergence_is_an_error(splits):
    class Explode(Hook):
        def transform(self, state, batch):
            return Batch(
                batch.x, batch.y, batch.idx, loss=lambda logits: logits.sum() * float("nan")
            )

    with pytest.raises(TrainingDivergedError, match="diverged"):
        fit(
            model_for(splits.train),
            splits.train,
            TrainConfig(epochs=1),
            [Explode()],
            progress=False,
        )


def test_accuracy_collapse_is_an_error(splits):
    class Collapse(Hook):
        """Learns normally for two epochs, then its logits always name a wrong class."""

        def train_step(self, state, batch):
            logits = state.model(batch.x)
            loss = torch.nn.functional.cross_entropy(logits, batch.y)
            loss.backward()
            if state.epoch >= 2:
                logits = torch.nn.functional.one_hot((batch.y + 1) % 4, 4).float()
            return loss.detach(), logits

    with pytest.raises(TrainingDivergedError, match="fell from .* to chance .* for 2 epochs"):
        fit(
            model_for(splits.train),
            splits.train,
            TrainConfig(epochs=6, batch_size=32, lr=0.05),
            [Collapse()],
            progress=False,
        )


@pytest.mark.parametrize(
    "accs,patience,raises",
    [
        ([60, 80, 25, 24], 2, True),  # learned, then two epochs at chance (25 for 4 classes)
        ([60, 80, 25, 40], 2, False),  # one bad epoch recovers
        ([60, 80, 25, 24], 0, False),  # check switched off
        ([26, 30, 27, 26], 2, False),  # hard (strong AT) but never learned then lost it
        ([24, 25], 2, False),  # too short to judge
    ],
)
def test_collapse_rule(accs, patience, raises):
    history = [{"epoch": i + 1, "train_acc": a} for i, a in enumerate(accs)]
    if raises:
        with pytest.raises(TrainingDivergedError, match="chance"):
            _check_collapse(history, 4, patience)
    else:
        _check_collapse(history, 4, patience)


def test_config_validation():
    with pytest.raises(ValueError, match="milestones"):
        TrainConfig(schedule="step")
    with pytest.raises(ValueError, match="milestones must lie"):
        TrainConfig(epochs=5, schedule="step", milestones=[6])


def test_two_hooks_that_take_over_the_step_are_refused_by_name(synthetic):
    from backdoorlab.errors import ConfigError

    class StepA(Hook):
        def train_step(self, state, batch):
            raise AssertionError("must not run")

    class StepB(StepA):
        pass

    data = synthetic().train
    model = build_model(MODELS.validate({"name": "small_cnn", "width": 4}), data.spec)
    with pytest.raises(ConfigError, match="StepA and StepB both take over the training step"):
        fit(model, data, TrainConfig(epochs=1), [StepA(), Hook(), StepB()], progress=False)
