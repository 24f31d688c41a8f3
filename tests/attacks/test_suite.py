"""Properties every attack shares: clipping, determinism, all-to-all (efficacy: test_efficacy)."""

import numpy as np
import pytest
import torch
from PIL import Image

from backdoorlab.attacks import ATTACKS, build_attack

AUX = {"model": {"name": "small_cnn", "width": 8, "stages": 2}, "train": {"epochs": 1}}
SMALL = {
    "badnets": {},
    "blended": {"alpha": 0.2},
    "sig": {"label_mode": "dirty", "rate_of": "dataset", "delta": 0.2},
    "lc": {"rate": 0.5, "steps": 3, "eps": 0.1, "alpha": 0.05, "surrogate": {**AUX, "at_steps": 1}},
    "trojan": {"steps": 10, "clean_model": AUX},
    "wanet": {"s": 2.0},
    "iad": {"mask_epochs": 1, "width": 4, "batch_size": 64},
    "pattern": {},  # the image file: written by the data fixture
}
ALL_TO_ALL = ["badnets", "blended", "sig", "trojan", "wanet", "iad", "pattern"]


def test_every_attack_is_registered():
    assert set(SMALL) | {"none"} == set(ATTACKS.names())


@pytest.fixture(scope="module")
def data(synthetic, tmp_path_factory):
    png = tmp_path_factory.mktemp("pattern") / "cross.png"
    img = np.zeros((12, 12), np.uint8)
    img[np.arange(2, 9), np.arange(2, 9)] = img[np.arange(2, 9), np.arange(8, 1, -1)] = 255
    Image.fromarray(img).save(png)
    SMALL["pattern"] = {"pattern": str(png)}
    return synthetic(size=12, train_size=128, test_size=32)


def make(name, spec, **extra):
    return build_attack(ATTACKS.entry(name).config(name=name, **{**SMALL[name], **extra}), spec)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_apply_clips_keeps_shape_and_is_deterministic(name, data):
    a, b = make(name, data.train.spec), make(name, data.train.spec)
    a.fit(data.train)
    b.fit(data.train)
    x = torch.rand(6, 3, 12, 12)
    xt, yt = a.apply(x, torch.arange(6) % 4)
    assert xt.shape == x.shape and xt.min() >= 0 and xt.max() <= 1
    assert torch.all(yt == 0)
    assert torch.allclose(xt, b.apply(x, torch.arange(6) % 4)[0], atol=1e-6)
    p1 = a.poison(data.train, torch.Generator().manual_seed(0))
    p2 = b.poison(data.train, torch.Generator().manual_seed(0))
    assert torch.equal(p1.indices, p2.indices) and torch.equal(p1.data.images, p2.data.images)
    assert torch.equal(p1.original_labels, data.train.labels[p1.indices])


@pytest.mark.parametrize("name", ALL_TO_ALL)
def test_all_to_all_labels(name, data):
    a = make(name, data.train.spec, mode="all-to-all", target=0)
    _, yt = a.apply(torch.rand(4, 3, 12, 12), torch.tensor([0, 1, 2, 3]))
    assert yt.tolist() == [1, 2, 3, 0]
    assert torch.all(a.asr_mask(torch.tensor([0, 1, 2, 3])))
