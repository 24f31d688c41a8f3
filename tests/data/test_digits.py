import torch

from backdoorlab.data import DATASETS, load_dataset


def test_digits_real_images_split_by_seed():
    cfg = DATASETS.entry("digits").config(name="digits")
    s = load_dataset(cfg, seed=0)
    assert len(s.train) == 1437 and len(s.test) == 360
    assert s.train.images.shape[1:] == (1, 8, 8) and s.train.images.dtype == torch.uint8
    assert int(s.train.images.max()) == 255 and s.train.num_classes == 10
    assert set(s.train.labels.unique().tolist()) == set(range(10))
    again = load_dataset(cfg, seed=0)
    assert torch.equal(s.train.images, again.train.images)
    other = load_dataset(cfg, seed=1)
    assert not torch.equal(s.train.labels, other.train.labels)
