import torch

from backdoorlab.data import DATASETS, load_dataset


def test_any_shape_and_class_count_deterministic():
    c = DATASETS.entry("synthetic").config(
        name="synthetic", num_classes=7, channels=2, size=20, train_size=50, test_size=30
    )
    s = load_dataset(c, seed=4)
    assert s.train.images.shape == (50, 2, 20, 20) and s.test.num_classes == 7
    assert torch.equal(s.train.images, load_dataset(c, seed=4).train.images)
    assert not torch.equal(s.train.images, load_dataset(c, seed=5).train.images)


def test_classes_are_separable_by_nearest_prototype():
    c = DATASETS.entry("synthetic").config(name="synthetic", train_size=400, test_size=200)
    s = load_dataset(c)
    x = s.train.floats().flatten(1)
    protos = torch.stack([x[s.train.labels == k].mean(0) for k in range(10)])
    pred = torch.cdist(s.test.floats().flatten(1), protos).argmin(1)
    assert (pred == s.test.labels).float().mean() > 0.8
