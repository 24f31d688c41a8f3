"""Benign references trained by the scan itself: fresh copies of the suspect's architecture,
kept by architecture, data and recipe, so the next scan of the same architecture trains nothing."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from backdoorlab.detectors.references import (
    RETRIES,
    ReferenceRecipe,
    architecture_key,
    fresh_copy,
    retry_recipe,
    split_clean,
    train_references,
)
from backdoorlab.errors import ConfigError, TrainingDivergedError
from backdoorlab.train.config import TrainConfig

TINY = {"count": 3, "train": TrainConfig(epochs=1, batch_size=32, eval_every=0)}


def net(width: int = 8) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, 4),
    )  # fmt: skip


class Counter:
    """A store that counts what it is asked."""

    def __init__(self) -> None:
        self.kept: dict[str, dict[str, torch.Tensor]] = {}
        self.puts = 0

    def get_state(self, key):
        return self.kept.get(key)

    def put_state(self, key, state):
        self.puts += 1
        self.kept[key] = {k: v.clone() for k, v in state.items()}


def test_a_fresh_copy_is_reinitialised_trainable_and_leaves_the_users_model_alone():
    torch.manual_seed(0)
    user = net()
    user[0].weight.requires_grad_(False)  # a frozen first layer
    before = {k: v.clone() for k, v in user.state_dict().items()}
    a, b = fresh_copy(user, 1), fresh_copy(user, 1)
    assert all(torch.equal(before[k], v) for k, v in user.state_dict().items())
    assert not user[0].weight.requires_grad
    assert all(p.requires_grad for p in a.parameters())
    assert not torch.equal(a[0].weight, user[0].weight)
    assert torch.equal(a[0].weight, b[0].weight)  # the seed decides the initialisation
    assert not torch.equal(a[0].weight, fresh_copy(user, 2)[0].weight)


def test_a_module_without_reset_parameters_is_one_clear_error():
    class Scale(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.gain = nn.Parameter(torch.ones(1))

        def forward(self, x):
            return x * self.gain

    with pytest.raises(ConfigError, match="'1.gain' belongs to a module without reset_par"):
        fresh_copy(nn.Sequential(net(), Scale()), 0)


def test_the_architecture_key_tells_widths_apart_not_weights():
    assert architecture_key(net(8)) == architecture_key(net(8))
    assert architecture_key(net(8)) != architecture_key(net(16))


def test_the_split_depends_on_the_content_not_the_order(synthetic):
    data = synthetic(train_size=64).train
    own, probe = split_clean(data, 0.5)
    shuffled = data.subset(torch.randperm(len(data), generator=torch.Generator().manual_seed(3)))
    own2, probe2 = split_clean(shuffled, 0.5)
    assert len(own) == 32 and len(probe) == 32
    assert torch.equal(own.images, own2.images) and torch.equal(probe.labels, probe2.labels)
    seen = {bytes(x.flatten().tolist()) for x in own.images}
    assert not any(bytes(x.flatten().tolist()) in seen for x in probe.images)


def test_references_come_from_the_store_the_second_time(synthetic):
    data = synthetic(train_size=64).train
    store, recipe = Counter(), ReferenceRecipe(**TINY)
    first = train_references(net(), data, recipe, store, progress=False)
    assert first.trained == 3 and store.puts == 3 and len(set(first.keys)) == 3
    again = train_references(net(), data, recipe, store, progress=False)
    assert again.trained == 0 and store.puts == 3 and again.keys == first.keys
    for a, b in zip(first.models, again.models, strict=True):
        assert all(torch.equal(a.state_dict()[k], v) for k, v in b.state_dict().items())
    other = ReferenceRecipe(**{**TINY, "seed": 5})  # another recipe: trained anew
    assert train_references(net(), data, other, store, progress=False).trained == 3
    assert train_references(net(16), data, recipe, store, progress=False).trained == 3


def test_one_clean_image_cannot_be_split_between_references_and_probes(synthetic):
    data = synthetic(train_size=8).train
    with pytest.raises(ConfigError, match="clean data: 1 image"):
        split_clean(data.subset(torch.tensor([0])), 0.5)


def test_more_references_reuse_the_fewer_and_train_only_the_new_ones(synthetic):
    data = synthetic(train_size=64).train
    store = Counter()
    three = train_references(net(), data, ReferenceRecipe(**TINY), store, progress=False)
    five = train_references(
        net(), data, ReferenceRecipe(**{**TINY, "count": 5}), store, progress=False
    )
    assert five.trained == 2 and five.keys[:3] == three.keys and store.puts == 5
    for a, b in zip(three.models, five.models[:3], strict=False):
        assert all(torch.equal(a.state_dict()[k], v) for k, v in b.state_dict().items())


def test_min_steps_adds_epochs_on_small_data_only_and_keeps_the_default_keys(synthetic):
    data = synthetic(train_size=64).train  # 2 batches of 32 per epoch
    plain = ReferenceRecipe(**TINY)
    assert plain.resolved(data).train.epochs == 1
    assert ReferenceRecipe(**TINY, min_steps=9).resolved(data).train.epochs == 5  # ceil(9 / 2)
    assert ReferenceRecipe(**TINY, min_steps=2).resolved(data).train.epochs == 1  # enough already
    # a setting added after the detection pages: at its default it is not in the dump, so the
    # references kept under the earlier keys are found again
    assert "min_steps" not in plain.model_dump() and "min_steps" in ReferenceRecipe.model_fields
    # the key is the resolved recipe's: min_steps that adds nothing finds the same references
    store = Counter()
    keys = train_references(net(), data, plain, store, progress=False).keys
    same = ReferenceRecipe(**TINY, min_steps=2)
    found = train_references(net(), data, same, store, progress=False)
    assert found.keys == keys and found.trained == 0
    longer = ReferenceRecipe(**TINY, min_steps=9)
    assert train_references(net(), data, longer, store, progress=False).trained == 3


def test_a_reference_that_did_not_learn_is_trained_again_slower_and_longer(synthetic):
    data = synthetic(train_size=64).train
    recipe = ReferenceRecipe(**TINY).resolved(data)
    second = retry_recipe(recipe, 2)
    assert second.train.lr == recipe.train.lr / 4 and second.train.epochs == 4 * recipe.train.epochs
    assert retry_recipe(recipe, 0) == recipe
    seen: list[float] = []

    def learned(ref: nn.Module) -> bool:  # the first attempt of every reference is rejected
        seen.append(len(seen))
        return len(seen) % 2 == 0

    store = Counter()
    refs = train_references(net(), data, ReferenceRecipe(**TINY), store, False, learned)
    assert refs.attempts == [1, 1, 1] and refs.trained == 6 and store.puts == 6
    plain = train_references(net(), data, ReferenceRecipe(**TINY), Counter(), progress=False)
    assert plain.attempts == [0, 0, 0] and not set(plain.keys) & set(refs.keys)
    # both attempts are kept: a second scan finds them and trains nothing
    seen.clear()
    again = train_references(net(), data, ReferenceRecipe(**TINY), store, False, learned)
    assert again.trained == 0 and again.keys == refs.keys and again.attempts == [1, 1, 1]
    # a reference no attempt teaches is kept from the last one (the scan's caution names it)
    never = train_references(net(), data, ReferenceRecipe(**TINY), store, False, lambda m: False)
    assert never.attempts == [RETRIES] * 3 and never.trained == 3 * (RETRIES + 1) - 6


def test_a_reference_that_diverges_at_every_rate_ends_the_scan_with_one_line(synthetic):
    data = synthetic(train_size=64).train
    wild = ReferenceRecipe(**{**TINY, "train": TrainConfig(epochs=1, batch_size=32, lr=1e30,
                                                           eval_every=0)})  # fmt: skip
    store = Counter()
    with pytest.raises(TrainingDivergedError, match="reference 1: training diverged at every"):
        train_references(net(), data, wild, store, progress=False)
    assert store.puts == RETRIES + 1  # each diverged attempt is kept as such
    with pytest.raises(TrainingDivergedError, match="diverged in an earlier scan"):
        train_references(net(), data, wild, store, progress=False)
    assert store.puts == RETRIES + 1  # and not trained again
