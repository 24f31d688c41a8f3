"""The stage cache: a run taking a stage from the cache goes on exactly as the one that built it."""

from __future__ import annotations

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


def test_cells_sharing_a_cache_give_the_metrics_of_uncached_runs(tiny_config, tmp_path):
    """No defense and a post-training defense share one infected model, and caching changes no
    number: each run equals the same run without a cache."""
    cache = tmp_path / "cache"
    configs = [{**tiny_config, "defense": d} for d in ({"name": "none"}, {"name": "ft"})]
    cached = [run(c, cache=cache, save=False, progress=False) for c in configs]
    assert cached[1].metrics["infected"]["from_cache"] is True
    assert "infected" not in cached[0].metrics
    assert cached[1].metrics["infected"]["metrics"]["acc"] == cached[0].metrics["acc"]
    for c, r in zip(configs, cached, strict=True):
        plain = run(c, save=False, progress=False)
        assert plain.metrics["acc"] == r.metrics["acc"] and plain.metrics["asr"] == r.metrics["asr"]
