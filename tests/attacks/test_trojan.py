import pytest
import torch

from backdoorlab.attacks import ATTACKS, build_attack

FAST = {
    "model": {"name": "small_cnn", "width": 8, "stages": 2},
    "train": {"epochs": 1, "batch_size": 64},
}


@pytest.fixture(scope="module")
def data(synthetic):
    return synthetic(size=12, train_size=200, test_size=50).train


def test_inverted_trigger_excites_the_strongest_neuron(data):
    a = build_attack(
        ATTACKS.entry("trojan").config(
            name="trojan", patch_size=4, steps=60, step_size=0.05, clean_model=FAST
        ),
        data.spec,
    )
    before = a.pattern.clone()
    a.fit(data)
    assert a.activation["triggered"] > a.activation["clean"]
    assert not torch.equal(a.pattern, before)
    assert torch.all(a.pattern[a.mask.expand_as(a.pattern) == 0] == 0)
    assert 0 <= a.pattern.min() and a.pattern.max() <= 1
    x = torch.rand(3, 3, 12, 12)
    xt = a.trigger(x)
    assert torch.equal(xt[..., :8, :8], x[..., :8, :8])
    assert torch.allclose(xt[..., -4:, -4:], a.pattern[..., -4:, -4:].expand(3, -1, -1, -1))
    assert a.state()["neurons"].numel() == 1
