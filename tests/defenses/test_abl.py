import torch

from backdoorlab.defenses.abl import (
    ABLConfig,
    ABLHook,
    _LossGuarded,
    isolate,
    isolation_numbers,
    per_sample_loss,
)
from backdoorlab.experiment import run
from backdoorlab.train import Batch


def test_isolation_picks_the_lowest_losses():
    losses = torch.tensor([0.9, 0.1, 2.0, 0.05, 0.3, 1.5, 0.2, 0.7, 3.0, 0.01])
    assert isolate(losses, 0.3).tolist() == [1, 3, 9]
    assert isolate(losses, 0.01).tolist() == [9]  # at least one sample
    big = torch.rand(1000, generator=torch.Generator().manual_seed(0))
    picked = isolate(big, 0.01)
    assert (
        len(picked) == 10 and big[picked].max() < big[~torch.isin(torch.arange(1000), picked)].min()
    )


def test_per_sample_loss_matches_cross_entropy(synthetic):
    data = synthetic().train
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 12 * 12, 4))
    got = per_sample_loss(model, data, batch_size=64)
    want = torch.nn.functional.cross_entropy(model(data.floats()), data.labels, reduction="none")
    assert torch.allclose(got, want, atol=1e-6)


def test_guarded_loss_then_isolated_samples_leave_the_batches():
    x, y, idx = torch.rand(4, 1, 4, 4), torch.tensor([0, 1, 0, 1]), torch.tensor([0, 1, 2, 3])
    b = _LossGuarded(0.5).transform(None, Batch(x, y, idx))
    confident = torch.tensor([[2.0, -2.0], [-2.0, 2.0]] * 2)  # loss 0.018 < gamma
    assert b.loss(confident) < 0  # sign(L - gamma) * L: ascent once below gamma
    assert b.loss(torch.zeros(4, 2)) > 0
    h = ABLHook(ABLConfig(name="abl"), None)
    h.mask = torch.tensor([False, True, False, True])
    out = h.transform(None, Batch(x, y, idx))
    assert out.idx.tolist() == [0, 2] and out.x.shape[0] == 2


def test_end_to_end_records_isolation_precision(tiny_config):
    tiny_config["train"]["epochs"] = 1
    tiny_config["defense"] = {
        "name": "abl",
        "isolation_epochs": 2,
        "isolation_ratio": 0.05,
        "unlearning_epochs": 2,
    }
    result = run(tiny_config, save=False, progress=False)
    m = result.metrics
    assert m.defense["abl_isolated"] == 13  # ceil(0.05 * 256)
    assert 0 <= m.defense["abl_precision"] <= 100 and 0 <= m.defense["abl_recall"] <= 100
    assert m.defense["abl_loss_cut"] >= 0 and m.defense["abl_loss_poisoned"] >= 0
    assert len(result.history) == 1  # isolation is a phase of its own before train.epochs


def test_without_training_on_the_rest_no_main_epoch_runs(tiny_config):
    tiny_config["defense"] = {"name": "abl", "isolation_epochs": 1, "train_on_rest": False}
    result = run(tiny_config, save=False, progress=False)
    assert result.history == [] and result.metrics.defense["abl_isolated"] == 3  # ceil(0.01 * 256)


def test_isolation_numbers_give_precision_and_the_losses_of_poisoned_and_clean_samples():
    losses = torch.tensor([0.1, 0.2, 0.3, 0.4, 0.5, 2.0, 3.0, 4.0])
    isolated = isolate(losses, 0.25)  # samples 0 and 1
    poisoned = torch.tensor([1, 6, 7])
    assert isolation_numbers(isolated, losses, None) == {"abl_isolated": 2}
    r = isolation_numbers(isolated, losses, poisoned)
    assert r["abl_isolated"] == 2 and r["abl_precision"] == 50.0
    assert abs(r["abl_recall"] - 100 / 3) < 1e-9
    assert r["abl_loss_poisoned"] == 3.0  # median of 0.2, 3.0, 4.0
    assert abs(r["abl_loss_clean"] - 0.4) < 1e-6  # median of 0.1, 0.3, 0.4, 0.5, 2.0
    assert abs(r["abl_loss_cut"] - 0.2) < 1e-6
