import pytest
import torch

from backdoorlab.data import DATASETS, load_dataset
from backdoorlab.data.photos import PHOTOS
from backdoorlab.errors import ConfigError


def cfg(**kw):
    return DATASETS.validate({"name": "photos", "train_size": 200, "test_size": 100, **kw})


def test_ten_balanced_classes_of_rgb_crops_deterministic():
    s = load_dataset(cfg(), seed=0)
    assert s.train.images.shape == (200, 3, 32, 32) and s.test.images.shape == (100, 3, 32, 32)
    assert s.train.classes == list(PHOTOS) and s.train.labels.bincount().tolist() == [20] * 10
    assert torch.equal(s.train.images, load_dataset(cfg(), seed=0).train.images)
    assert not torch.equal(s.train.images, load_dataset(cfg(), seed=1).train.images)
    gray = s.train.images[s.train.labels == PHOTOS.index("brick")]
    assert torch.equal(gray[:, 0], gray[:, 1]) and torch.equal(gray[:, 1], gray[:, 2])


def test_train_and_test_crops_come_from_disjoint_parts(monkeypatch):
    from backdoorlab.data import photos

    # a photo whose value is its column (0..250 over 251 columns): a crop's pixels reveal where
    # it was cut; the train region is columns < 175, the test region columns >= 175
    gradient = torch.arange(251, dtype=torch.float32).expand(3, 200, 251).clone()
    monkeypatch.setattr(photos, "_photo", lambda name: gradient)
    s = load_dataset(cfg(min_crop=40, max_crop=60), seed=0)
    assert int(s.train.images.max()) < 175 and int(s.test.images.min()) >= 175


def test_crop_larger_than_a_region_is_a_config_error():
    with pytest.raises(ConfigError, match="max_crop"):
        load_dataset(cfg(min_crop=100, max_crop=200))
    with pytest.raises(ValueError, match="min_crop"):
        cfg(min_crop=50, max_crop=40)
