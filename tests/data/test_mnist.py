import gzip
import hashlib
import struct

import numpy as np
import pytest
import torch

from backdoorlab.data import DATASETS, load_dataset
from backdoorlab.data.mnist import read_idx
from backdoorlab.errors import DataError


def idx_bytes(arr: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return header + arr.astype(np.uint8).tobytes()


def write_mnist(folder, prefix, n, gz=True, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    y = rng.integers(0, 10, n).astype(np.uint8)
    for kind, arr in (("images-idx3", x), ("labels-idx1", y)):
        name = f"{prefix}-{kind}-ubyte"
        data = idx_bytes(arr)
        if gz:
            (folder / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (folder / name).write_bytes(data)
    return x, y


def cfg(**kw):
    kw.setdefault("check_md5", False)
    return DATASETS.entry("mnist").config(name="mnist", **kw)


def test_reads_gz_and_raw_idx_with_official_splits(tmp_path):
    x, y = write_mnist(tmp_path, "t10k", 30, gz=True)
    xtr, ytr = write_mnist(tmp_path, "train", 50, gz=False, seed=1)
    s = load_dataset(cfg(root=str(tmp_path)))
    assert len(s.train) == 50 and len(s.test) == 30
    assert torch.equal(s.test.images[:, 0], torch.from_numpy(x))
    assert torch.equal(s.train.labels, torch.from_numpy(ytr).long())


def test_only_t10k_is_split_by_seed(tmp_path):
    write_mnist(tmp_path, "t10k", 100)
    s = load_dataset(cfg(root=str(tmp_path), train_size=60, test_size=40), seed=3)
    assert len(s.train) == 60 and len(s.test) == 40
    with pytest.raises(DataError, match="at most"):
        load_dataset(cfg(root=str(tmp_path), train_size=80, test_size=40))


def test_truncated_idx_is_a_clear_error(tmp_path):
    write_mnist(tmp_path, "t10k", 20, gz=False)
    f = tmp_path / "t10k-images-idx3-ubyte"
    f.write_bytes(f.read_bytes()[:-10])
    with pytest.raises(DataError, match="truncated"):
        read_idx(f)
    g = tmp_path / "bad.gz"
    header = bytes([0, 0, 0x08, 1]) + struct.pack(">I", 5000)
    g.write_bytes(gzip.compress(header + np.random.default_rng(0).bytes(5000))[:1000])
    with pytest.raises(DataError, match="cannot read"):  # the gzip stream ends early
        read_idx(g)
    g.write_bytes(gzip.compress(np.random.default_rng(0).bytes(5000)))
    with pytest.raises(DataError, match="not an unsigned-byte IDX"):
        read_idx(g)


def test_md5_mismatch_and_missing_folder(tmp_path):
    write_mnist(tmp_path, "t10k", 10)
    with pytest.raises(DataError, match="md5"):
        load_dataset(DATASETS.entry("mnist").config(name="mnist", root=str(tmp_path)))
    with pytest.raises(DataError, match="does not exist"):
        load_dataset(cfg(root=str(tmp_path / "nope")))


def test_download_checks_md5_and_leaves_no_partial_file(tmp_path, monkeypatch):
    from backdoorlab.data import mnist

    src = tmp_path / "mirror"
    src.mkdir()
    write_mnist(src, "t10k", 12)
    write_mnist(src, "train", 20, seed=1)
    sums = {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in src.iterdir()}
    monkeypatch.setattr(mnist, "MIRRORS", ["file:///nonexistent/", src.as_uri() + "/"])
    monkeypatch.setattr(mnist, "FILES", sums)
    root = tmp_path / "data"
    s = load_dataset(DATASETS.entry("mnist").config(name="mnist", root=str(root), download=True))
    assert len(s.train) == 20 and len(s.test) == 12
    assert sorted(p.name for p in root.iterdir()) == sorted(sums)

    monkeypatch.setattr(mnist, "FILES", {k: "0" * 32 for k in sums})
    bad = tmp_path / "bad"
    with pytest.raises(DataError, match="could not download"):
        load_dataset(DATASETS.entry("mnist").config(name="mnist", root=str(bad), download=True))
    assert list(bad.iterdir()) == []


def test_real_mnist_files(mnist_dir):
    s = load_dataset(
        cfg(root=str(mnist_dir), train_size=8000, test_size=2000, check_md5=True), seed=0
    )
    assert s.train.images.shape == (8000, 1, 28, 28) and len(s.test) == 2000
    assert set(s.train.labels.unique().tolist()) == set(range(10))
    assert 0.12 < s.train.mean[0] < 0.14  # MNIST's well-known mean intensity ~0.13
    again = load_dataset(cfg(root=str(mnist_dir), train_size=8000, test_size=2000), seed=0)
    assert torch.equal(s.test.labels, again.test.labels)
