import pytest
import torch

from backdoorlab.attacks import ATTACKS, build_attack
from backdoorlab.data import Dataset
from backdoorlab.errors import ConfigError


def dataset(n=200, k=5):
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 200, (n, 1, 8, 8), generator=g, dtype=torch.uint8)
    return Dataset("t", images, torch.arange(n) % k, [str(i) for i in range(k)], (0.5,), (0.2,))


def attack(d, **kw):
    kw.setdefault("patch_size", 2)
    return build_attack(ATTACKS.entry("badnets").config(name="badnets", **kw), d.spec)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_dirty_label_all_to_one_bookkeeping():
    d = dataset()
    p = attack(d, rate=0.1, target=2).poison(d, gen())
    assert p.count == 20 and torch.equal(p.indices, p.indices.sort().values)
    assert torch.all(p.original_labels != 2)
    assert torch.equal(p.original_labels, d.labels[p.indices])
    assert torch.all(p.data.labels[p.indices] == 2)
    clean = ~p.mask()
    assert torch.equal(p.data.images[clean], d.images[clean])
    assert torch.equal(p.data.labels[clean], d.labels[clean])
    assert torch.all(p.data.images[p.indices][:, :, -2:, -2:].flatten(1).max(1).values == 255)
    assert torch.equal(d.labels, torch.arange(200) % 5), "poisoning must not modify the input"


def test_rate_denominators():
    d = dataset()  # 40 images per class
    whole = attack(d, rate=0.1, label_mode="clean", rate_of="dataset").poison(d, gen())
    assert whole.count == 20
    target = attack(d, rate=0.1, label_mode="clean", rate_of="target_class").poison(d, gen())
    assert target.count == 4
    assert torch.all(target.data.labels[target.indices] == 0)
    assert torch.equal(target.data.labels, d.labels), "clean-label keeps every label"


def test_all_to_all_targets_next_class():
    d = dataset()
    a = attack(d, rate=0.5, mode="all-to-all")
    p = a.poison(d, gen())
    assert torch.equal(p.data.labels[p.indices], (p.original_labels + 1) % 5)
    assert torch.all(a.asr_mask(d.labels))
    with pytest.raises(ValueError, match="all-to-all"):
        ATTACKS.entry("badnets").config(name="badnets", mode="all-to-all", label_mode="clean")


def test_determinism_from_the_seed():
    d = dataset()
    a = attack(d, rate=0.2)
    assert torch.equal(a.poison(d, gen(1)).indices, a.poison(d, gen(1)).indices)
    assert not torch.equal(a.poison(d, gen(1)).indices, a.poison(d, gen(2)).indices)


def test_impossible_rates_and_targets():
    d = dataset()
    with pytest.raises(ConfigError, match="only 40 are eligible"):
        attack(d, rate=0.5, label_mode="clean").poison(d, gen())
    with pytest.raises(ConfigError, match="poisons no sample"):
        attack(d, rate=0.001).poison(d, gen())
    with pytest.raises(ConfigError, match="class 12 does not exist"):
        attack(d, target=12)


def test_poisoned_pixels_are_the_quantised_float_trigger():
    d = dataset()
    a = build_attack(
        ATTACKS.entry("blended").config(name="blended", key="noise", alpha=0.3, rate=0.1), d.spec
    )
    p = a.poison(d, gen())
    expected = (a.trigger(d.floats(p.indices)).clamp(0, 1) * 255).round().to(torch.uint8)
    assert torch.equal(p.data.images[p.indices], expected)
