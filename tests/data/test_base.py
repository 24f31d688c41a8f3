import pytest
import torch

from backdoorlab.data.base import Dataset, split_by_seed, subsample
from backdoorlab.errors import DataError


def make(n=10, c=1, classes=3):
    return Dataset(
        "t",
        torch.zeros(n, c, 4, 4, dtype=torch.uint8),
        torch.arange(n) % classes,
        [str(i) for i in range(classes)],
        (0.5,) * c,
        (0.2,) * c,
    )


def test_dataset_validates_types_and_labels():
    with pytest.raises(DataError, match="uint8"):
        Dataset(
            "t", torch.zeros(2, 1, 4, 4), torch.zeros(2, dtype=torch.int64), ["a"], (0.5,), (0.2,)
        )
    with pytest.raises(DataError, match="labels outside"):
        Dataset(
            "t",
            torch.zeros(2, 1, 4, 4, dtype=torch.uint8),
            torch.tensor([0, 5]),
            ["a", "b"],
            (0.5,),
            (0.2,),
        )
    with pytest.raises(DataError, match="per channel"):
        Dataset(
            "t",
            torch.zeros(2, 3, 4, 4, dtype=torch.uint8),
            torch.zeros(2, dtype=torch.int64),
            ["a"],
            (0.5,),
            (0.2,),
        )


def test_subset_spec_and_floats():
    d = make()
    d.images[3] = 255
    s = d.subset(torch.tensor([3, 4]))
    assert len(s) == 2 and s.labels.tolist() == [0, 1]
    assert s.floats().max() == 1.0 and s.floats().dtype == torch.float32
    assert d.spec.num_classes == 3 and d.spec.size == (4, 4)


def test_split_by_seed_is_disjoint_and_deterministic():
    x = torch.arange(100, dtype=torch.uint8).view(100, 1, 1, 1)
    y = torch.arange(100) % 10
    (a, _), (b, _) = split_by_seed(x, y, 70, 30, seed=1, what="t")
    (a2, _), _ = split_by_seed(x, y, 70, 30, seed=1, what="t")
    (a3, _), _ = split_by_seed(x, y, 70, 30, seed=2, what="t")
    assert set(a.flatten().tolist()).isdisjoint(b.flatten().tolist())
    assert torch.equal(a, a2) and not torch.equal(a, a3)
    with pytest.raises(DataError, match="at most"):
        split_by_seed(x, y, 90, 20, seed=1, what="t")


def test_subsample():
    x = torch.arange(10, dtype=torch.uint8).view(10, 1, 1, 1)
    y = torch.arange(10)
    xs, ys = subsample(x, y, 4, 0, "t")
    assert len(ys) == 4 and torch.equal(xs.flatten().long(), ys)
    with pytest.raises(DataError, match="only 10"):
        subsample(x, y, 11, 0, "t")
