import pytest
import torch

from backdoorlab.data import InputSpec
from backdoorlab.defenses.fp import channel_activity, prune_channels
from backdoorlab.defenses.nad import attention
from backdoorlab.experiment import run
from backdoorlab.metrics.detection import mad_index
from backdoorlab.models import MODELS, build_model


def small_model():
    torch.manual_seed(0)
    cfg = MODELS.entry("small_cnn").config(name="small_cnn", width=8, stages=2)
    return build_model(cfg, InputSpec(3, (12, 12), 4, (0.5,) * 3, (0.25,) * 3)).eval()


def test_pruning_a_channel_equals_zeroing_its_feature(synthetic):
    model, data = small_model(), synthetic().train
    x = data.floats(torch.arange(16))
    feats = model.features(x)
    prune_channels(model, torch.tensor([0, 3]))
    feats[:, [0, 3]] = 0
    assert torch.allclose(model(x), model.fc(feats), atol=1e-6)
    act = channel_activity(model, data)
    assert act.shape == (16,) and (act >= 0).all()  # ReLU features


def test_attention_is_unit_norm_and_channel_summed():
    f = torch.randn(2, 5, 4, 4)
    a = attention(f)
    assert a.shape == (2, 16) and torch.allclose(a.norm(dim=1), torch.ones(2))
    manual = (f**2).sum(1).flatten(1)
    assert torch.allclose(a, manual / manual.norm(dim=1, keepdim=True))


def test_anomaly_index_flags_the_small_outlier():
    norms = torch.tensor([40.0, 42.0, 38.0, 41.0, 5.0, 39.0, 42.0, 40.5, 39.5, 41.5])
    index = mad_index(norms, "low")  # NC scores small triggers only
    median = norms.median()  # torch: the lower middle value, 40
    mad = 1.4826 * (norms - median).abs().median()
    assert index[4].item() == pytest.approx(35 / mad.item())
    assert index.argmax() == 4 and index[4] > 2 and (index[torch.arange(10) != 4] < 2).all()
    assert (index[norms > median] == 0).all()  # a large trigger is not anomalous for NC


@pytest.mark.parametrize(
    "defense",
    [
        {"name": "ft", "epochs": 1},
        {"name": "fp", "epochs": 1, "max_acc_drop": 10},
        {"name": "nad", "teacher_epochs": 1, "epochs": 1},
        {"name": "nc", "steps": 10, "batches_per_step": 2, "epochs": 1},
    ],
)
def test_each_post_training_defense_end_to_end(tiny_config, tmp_path, defense):
    tiny_config["defense"] = {**defense, "clean_share": 0.25}
    r = run(tiny_config, cache=tmp_path / "cache", save=False, progress=False)
    assert 0 <= r.metrics.acc <= 100 and 0 <= r.metrics.asr <= 100
    assert r.metrics.before is not None and 0 <= r.metrics.before.acc <= 100
    own = r.metrics.defense
    if defense["name"] == "fp":
        assert 0 <= own["fp_pruned"] < own["fp_channels"]
        drops = [own["fp_steps"][0]["clean_acc"] - s["clean_acc"] for s in own["fp_steps"]]
        assert all(d <= 10 for d in drops[:-1])  # every kept step within the allowed drop
    if defense["name"] == "nc":
        assert len(own["nc_norms"]) == 4 and len(own["nc_anomaly_index"]) == 4


def _plain_net() -> torch.nn.Module:
    torch.manual_seed(0)
    nn = torch.nn
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 4),
    )  # fmt: skip


@pytest.mark.parametrize(
    "defense,options",
    [
        ("fp", {"epochs": 1}),
        ("fp", {"epochs": 1, "layer": "4"}),
        ("fp", {"epochs": 1, "ratio": 0.5}),
        ("nad", {"teacher_epochs": 1, "epochs": 1}),
        ("nad", {"teacher_epochs": 1, "epochs": 1, "layers": ["1", "5"]}),
        ("nc", {"steps": 10, "batches_per_step": 2, "epochs": 1}),
        ("ft", {"epochs": 1}),
        ("aft", {"epochs": 1, "eps": 0.1}),
    ],
)
def test_post_training_defenses_repair_a_plain_module(synthetic, defense, options):
    from backdoorlab.byo.api import repair

    data = synthetic()
    net = _plain_net()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    repaired, report = repair(net, data.train, defense, test=data.test, device="cpu", **options)
    assert report.before is not None and report.after is not None
    assert 0 <= report.after["acc"] <= 100
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())  # a copy
    if defense == "fp":
        conv = repaired[4]  # the last conv of the default block (or of layer "4", the same)
        zeroed = (conv.weight.flatten(1).abs().sum(1) == 0).sum().item()
        assert zeroed == report.defense_report["fp_pruned"] > 0
        assert report.defense_report["fp_layer"] == "4"
        if "ratio" in options:  # Gao's grid: exactly half of the 16 channels, no stopping rule
            assert zeroed == 8 and len(report.defense_report["fp_steps"]) == 2
    if defense == "nad":
        assert report.defense_report["nad_layers"] == options.get("layers", ["4"])


def test_a_repair_with_a_trigger_and_no_test_set_measures_on_its_clean_data(synthetic):
    from backdoorlab.byo.api import repair

    data = synthetic().train
    corner = torch.zeros(3, 12, 12)
    corner[:, -3:, -3:] = 1
    _, report = repair(
        _plain_net(), data, "ft", epochs=1, trigger=corner, mask=corner[:1], target=0,
        device="cpu",
    )  # fmt: skip
    assert report.measured_on == "clean"
    assert report.before["asr"] is not None and report.after["acc"] is not None
    _, report = repair(_plain_net(), data, "ft", epochs=1, device="cpu")
    assert report.measured_on is None and report.before is None


def test_nc_search_has_the_reference_defaults_and_its_cost_shrinks_a_free_trigger(synthetic):
    from backdoorlab.defenses.nc import NCConfig
    from backdoorlab.detectors.trigger_search import reverse_trigger

    cfg = NCConfig(name="nc")
    reference = (1000, 32, 0.1, 1e-3, 2.0, 5, 0.99, True, 1.0, 25)
    assert (
        cfg.steps, cfg.batch_size, cfg.lr, cfg.init_cost, cfg.cost_multiplier, cfg.patience,
        cfg.success_threshold, cfg.early_stop, cfg.early_stop_threshold, cfg.early_stop_patience,
    ) == reference  # fmt: skip
    assert cfg.batches_per_step is None  # one pass over the clean data per step

    class Always2(torch.nn.Module):  # every input, triggered or not, is already class 2
        def forward(self, x):
            logits = torch.nn.functional.one_hot(torch.full((len(x),), 2), 4).float()
            return 10 * logits + 0 * x.sum()

    data = synthetic().train
    search = NCConfig(name="nc", steps=40, batches_per_step=3, batch_size=16)
    mask, pattern, norm = reverse_trigger(Always2(), data, 2, search, seed=0)
    start = 0.5 * mask[0, 0].numel()  # tanh(0): every mask value starts at 0.5
    assert norm < 0.05 * start  # only the cost, switched on after 5 steps, moves the mask
    assert mask.shape == (1, 1, 12, 12) and pattern.shape == (1, 3, 12, 12)


def test_the_trigger_search_leaves_frozen_layers_frozen_and_the_mode_as_found(synthetic):
    from backdoorlab.byo.scanning import scan
    from backdoorlab.defenses.nc import NCConfig
    from backdoorlab.detectors.trigger_search import reverse_trigger

    net = _plain_net()
    for p in net[0].parameters():  # a user's frozen first conv
        p.requires_grad_(False)
    net.train()
    data = synthetic().train
    reverse_trigger(net, data, 1, NCConfig(name="nc", steps=3, batches_per_step=1), seed=0)
    assert net.training
    assert [p.requires_grad for p in net.parameters()] == [False, False] + [True] * 8
    scan(net, data, detectors=["nc"], options={"nc": {"steps": 3, "batches_per_step": 1}},
         references=None)  # fmt: skip
    assert [p.requires_grad for p in net.parameters()] == [False, False] + [True] * 8


def test_repeat_applies_the_suspects_repair_to_another_model(synthetic, tiny_config):
    """Neural Cleanse repeats what it did to the suspect on a reference: the same reversed
    trigger unlearned with the same images; another defense runs afresh on it."""
    from backdoorlab.defenses.base import DEFENSES, DefenseContext, build_defense
    from backdoorlab.defenses.nc import NCConfig
    from backdoorlab.train.config import TrainConfig

    data = synthetic().train
    ctx = DefenseContext(
        train=data, train_config=TrainConfig(epochs=1), device=torch.device("cpu"), seed=0,
        clean=data,
    )  # fmt: skip
    nc = build_defense(NCConfig(name="nc", target=1, steps=5, batches_per_step=1, epochs=1))

    def weights(m):
        return torch.cat([p.detach().flatten() for p in m.parameters()])

    untouched = nc.repeat(small_model(), ctx)  # nothing found in a suspect yet: unchanged
    assert torch.equal(weights(untouched), weights(small_model()))
    torch.manual_seed(0)
    nc.repair(small_model(), ctx)
    (found,) = nc.triggers.values()

    torch.manual_seed(1)
    repeated = nc.repeat(small_model(), ctx)
    torch.manual_seed(1)
    by_hand = nc.unlearn(small_model(), data, ctx, {1: found})
    assert torch.equal(weights(repeated), weights(by_hand))  # the suspect's trigger, no new search
    assert not torch.equal(weights(repeated), weights(small_model()))  # and it did fine-tune
    ft = build_defense(DEFENSES.validate({"name": "ft", "epochs": 1}))
    torch.manual_seed(2)
    again = ft.repeat(small_model(), ctx)
    torch.manual_seed(2)
    fresh = build_defense(ft.cfg).repair(small_model(), ctx)
    assert torch.equal(weights(again), weights(fresh))
