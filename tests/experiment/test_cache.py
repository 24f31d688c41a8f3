"""The stage cache: a run taking a stage from the cache goes on exactly as the one that built it."""

from __future__ import annotations

import pytest
import torch

from backdoorlab.experiment.cache import StageCache
from backdoorlab.experiment.config import load_config
from backdoorlab.experiment.prepare import prepare
from backdoorlab.experiment.runner import run


def test_entries_restore_tensors_meta_and_the_rng_state(tmp_path):
    cache = StageCache(tmp_path)
    torch.manual_seed(3)
    cache.put("poisoned", "k", {"a": torch.arange(5)}, {"count": 5})
    expected = torch.rand(4)
    torch.manual_seed(99)  # move the RNG elsewhere; get() must bring it back
    entry = cache.get("poisoned", "k")
    assert entry.meta["count"] == 5 and torch.equal(entry.tensors["a"], torch.arange(5))
    assert set(entry.tensors) == {"a"}
    assert torch.equal(torch.rand(4), expected)
    assert cache.get("poisoned", "other") is None and cache.keys("poisoned") == ["k"]
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]


def test_poisoned_stage_from_the_cache_equals_the_fresh_one(tiny_config, tmp_path):
    cfg = load_config({**tiny_config, "attack": {"name": "blended", "rate": 0.1}})
    cache = StageCache(tmp_path)
    torch.manual_seed(0)
    fresh = prepare(cfg, cache=cache)
    after_fresh = torch.rand(3)
    torch.manual_seed(0)
    hit = prepare(cfg, cache=cache)
    assert torch.equal(torch.rand(3), after_fresh)
    assert torch.equal(hit.poisoned.data.images, fresh.poisoned.data.images)
    assert torch.equal(hit.poisoned.data.labels, fresh.poisoned.data.labels)
    assert torch.equal(hit.poisoned.indices, fresh.poisoned.indices)
    x = fresh.splits.test.floats()[:8]
    assert torch.equal(hit.attack.trigger(x), fresh.attack.trigger(x))
    assert len(cache.keys("poisoned")) == 1


@pytest.mark.parametrize(
    "attack",
    [
        {"name": "badnets", "rate": 0.1, "patch_size": 3},
        {"name": "iad", "rate": 0.3, "mask_epochs": 1, "width": 4},  # its generator trains too
    ],
)
def test_cells_sharing_a_cache_give_the_metrics_of_uncached_runs(tiny_config, tmp_path, attack):
    """No defense and a post-training defense share one infected model (with the attack's state
    as training left it), and caching changes no number: each run equals it without a cache."""
    cache = tmp_path / "cache"
    tiny_config = {**tiny_config, "attack": attack}
    if attack["name"] == "iad":  # long enough for the backdoor (and the generator) to take hold
        tiny_config["dataset"] = {**tiny_config["dataset"], "train_size": 512}
        tiny_config["train"] = {**tiny_config["train"], "epochs": 6, "eval_every": 0}
    configs = [{**tiny_config, "defense": d} for d in ({"name": "none"}, {"name": "ft"})]
    cached = [run(c, cache=cache, save=False, progress=False) for c in configs]
    assert cached[1].metrics.stage["from_cache"] is True
    assert cached[0].metrics.before is None
    infected = cached[1].metrics.before
    assert (infected.acc, infected.asr) == (
        cached[0].metrics.acc,
        cached[0].metrics.asr,
    )
    for c, r in zip(configs, cached, strict=True):
        plain = run(c, save=False, progress=False)
        assert plain.metrics.acc == r.metrics.acc and plain.metrics.asr == r.metrics.asr


@pytest.mark.parametrize("part", ["tensors.safetensors", "meta.json"])
def test_a_truncated_entry_is_a_miss_and_is_rewritten(tiny_config, tmp_path, part):
    cfg = {**tiny_config, "defense": {"name": "ft", "epochs": 1}}
    cfg["train"] = {**cfg["train"], "epochs": 1, "eval_every": 0}
    first = run(cfg, out=tmp_path / "a", progress=False, cache=tmp_path / "cache")
    cache = StageCache(tmp_path / "cache")
    (key,) = cache.keys("infected")
    path = tmp_path / "cache" / "infected" / key / part
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # a crash, a full disk
    assert cache.get("infected", key) is None
    again = run(cfg, out=tmp_path / "b", progress=False, cache=tmp_path / "cache")
    assert again.metrics.stage["from_cache"] is False
    assert again.metrics.acc == first.metrics.acc
    assert cache.get("infected", key) is not None  # recomputed and stored whole again
    third = run(cfg, out=tmp_path / "c", progress=False, cache=tmp_path / "cache")
    assert third.metrics.stage["from_cache"] is True


def test_an_auxiliary_model_is_trained_once_per_config_and_data(tiny_config, tmp_path):
    """LC cells that differ only in eps share one surrogate through the `auxiliary` stage, and
    the cached surrogate equals the one a run without a cache trains; a different surrogate
    recipe is a different entry."""
    surrogate = {"model": {"name": "small_cnn", "width": 8, "stages": 2}, "at_steps": 1}
    surrogate["train"] = {"epochs": 1, "batch_size": 64}
    lc = {"name": "lc", "rate": 0.5, "steps": 2, "patch_size": 2, "surrogate": surrogate}
    cache = StageCache(tmp_path)
    first = prepare(load_config({**tiny_config, "attack": {**lc, "eps": 0.1}}), cache=cache)
    second = prepare(load_config({**tiny_config, "attack": {**lc, "eps": 0.2}}), cache=cache)
    alone = prepare(load_config({**tiny_config, "attack": {**lc, "eps": 0.2}}))
    assert len(cache.keys("poisoned")) == 2 and len(cache.keys("auxiliary")) == 1
    for p in (second, alone):
        for name, w in p.attack.surrogate.state_dict().items():
            assert torch.equal(w, first.attack.surrogate.state_dict()[name]), name
    assert torch.equal(second.poisoned.data.images, alone.poisoned.data.images)
    other = {**lc, "eps": 0.1, "surrogate": {**surrogate, "at_eps": 0.1}}
    prepare(load_config({**tiny_config, "attack": other}), cache=cache)
    assert len(cache.keys("auxiliary")) == 2


def test_cache_true_keeps_it_beside_the_run_false_keeps_none(tiny_config, tmp_path):
    """`cache=True` (the default) puts a repair's stage cache beside the run folder; False
    writes none; a saved run without a post-training defense keeps none either way."""
    cfg = {**tiny_config, "defense": {"name": "ft", "epochs": 1}}
    cfg["train"] = {**cfg["train"], "epochs": 1, "eval_every": 0}
    run(cfg, out=tmp_path / "on" / "run", progress=False)
    assert StageCache(tmp_path / "on" / "cache").keys("infected")
    off = run(cfg, out=tmp_path / "off" / "run", progress=False, cache=False)
    assert off.metrics.stage == {}  # trained here, not taken from a cache
    assert sorted(p.name for p in (tmp_path / "off").iterdir()) == ["results.db", "run"]
    plain = {**tiny_config, "train": cfg["train"]}
    run(plain, out=tmp_path / "plain" / "run", progress=False)
    assert not (tmp_path / "plain" / "cache").exists()
