import numpy as np
import pytest
from PIL import Image

from backdoorlab.data import DATASETS, load_dataset
from backdoorlab.errors import DataError


def write_folder(root, split, classes, n, size=20):
    for c, name in enumerate(classes):
        d = root / split / name / "images"
        d.mkdir(parents=True)
        for i in range(n):
            arr = np.full((size, size + 4, 3), 40 * c + i, dtype=np.uint8)
            Image.fromarray(arr).save(d / f"{i}.png" if i % 2 else d / f"{i}.JPEG", "PNG")


def cfg(root, **kw):
    return DATASETS.entry("imagefolder").config(name="imagefolder", root=str(root), **kw)


def test_train_and_test_folders(tmp_path):
    write_folder(tmp_path, "train", ["n01", "n02", "n03"], 4)
    write_folder(tmp_path, "test", ["n01", "n02", "n03"], 2)
    s = load_dataset(cfg(tmp_path, size=16))
    assert s.train.images.shape == (12, 3, 16, 16) and len(s.test) == 6
    assert s.train.classes == ["n01", "n02", "n03"]
    assert sorted(s.test.labels.tolist()) == [0, 0, 1, 1, 2, 2]
    assert int(s.train.images[s.train.labels == 2].min()) >= 80


def test_single_folder_is_split_and_grayscale(tmp_path):
    write_folder(tmp_path, "all", ["a", "b"], 5)
    s = load_dataset(cfg(tmp_path / "all", size=8, channels=1, test_fraction=0.2))
    assert s.train.channels == 1 and len(s.train) == 8 and len(s.test) == 2


def test_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_dataset(cfg(tmp_path / "missing"))
    bad = tmp_path / "bad" / "a"
    bad.mkdir(parents=True)
    (bad / "x.png").write_bytes(b"not an image")
    (tmp_path / "bad" / "b").mkdir()
    with pytest.raises(DataError, match="cannot decode"):
        load_dataset(cfg(tmp_path / "bad"))
