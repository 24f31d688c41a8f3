import hashlib
import io
import pickle
import tarfile

import numpy as np
import pytest

from backdoorlab.data import DATASETS, load_dataset
from backdoorlab.errors import DataError


def add(tar, name, obj):
    raw = pickle.dumps(obj, protocol=2)
    info = tarfile.TarInfo(name)
    info.size = len(raw)
    tar.addfile(info, io.BytesIO(raw))


def write_cifar10(path, per_batch=8, test=6, balanced=False):
    """A CIFAR-10 archive in the official format; `balanced`: training labels cycle 0..9."""
    rng = np.random.default_rng(0)
    with tarfile.open(path, "w:gz") as tar:
        for i in range(1, 6):
            labels = rng.integers(0, 10, per_batch).tolist()
            if balanced:
                labels = [(i * per_batch + j) % 10 for j in range(per_batch)]
            add(
                tar,
                f"cifar-10-batches-py/data_batch_{i}",
                {
                    b"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
                    b"labels": labels,
                },
            )
        add(
            tar,
            "cifar-10-batches-py/test_batch",
            {
                "data": rng.integers(0, 256, (test, 3072), dtype=np.uint8),
                "labels": [j % 10 for j in range(test)],
            },
        )
        add(
            tar,
            "cifar-10-batches-py/batches.meta",
            {
                "label_names": [
                    "airplane",
                    "automobile",
                    "bird",
                    "cat",
                    "deer",
                    "dog",
                    "frog",
                    "horse",
                    "ship",
                    "truck",
                ]
            },
        )
    return hashlib.md5(path.read_bytes()).hexdigest()


def cfg(name, root, md5, **kw):
    return DATASETS.entry(name).config(name=name, root=str(root), md5=md5, **kw)


def test_cifar10_archive_is_read_in_place(tmp_path):
    md5 = write_cifar10(tmp_path / "cifar-10-python.tar.gz")
    s = load_dataset(cfg("cifar10", tmp_path, md5))
    assert s.train.images.shape == (40, 3, 32, 32) and len(s.test) == 6
    assert s.test.labels.tolist() == list(range(6))
    assert s.train.classes[1] == "automobile" and s.train.mean[0] == pytest.approx(0.4914)
    sub = load_dataset(cfg("cifar10", tmp_path, md5, train_size=10, test_size=3))
    assert len(sub.train) == 10 and len(sub.test) == 3


def test_cifar100_fine_labels(tmp_path):
    rng = np.random.default_rng(1)
    path = tmp_path / "cifar-100-python.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for part, n in (("train", 12), ("test", 5)):
            add(
                tar,
                f"cifar-100-python/{part}",
                {
                    "data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                    "fine_labels": rng.integers(0, 100, n).tolist(),
                    "coarse_labels": [0] * n,
                },
            )
        add(tar, "cifar-100-python/meta", {"fine_label_names": [f"c{i}" for i in range(100)]})
    s = load_dataset(cfg("cifar100", tmp_path, None))
    assert s.train.num_classes == 100 and len(s.train) == 12 and len(s.test) == 5


def test_truncated_or_wrong_archive_is_a_clear_error(tmp_path):
    path = tmp_path / "cifar-10-python.tar.gz"
    write_cifar10(path)
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(DataError, match="md5"):
        load_dataset(cfg("cifar10", tmp_path, "official"))
    with pytest.raises(DataError, match="cifar10"):
        load_dataset(cfg("cifar10", tmp_path, None))


def test_pickles_that_run_code_are_refused(tmp_path):
    # {"data": builtins.print("pwned")} as protocol-2 opcodes, written out: pickling `print` itself
    # would record whatever `print` is now (ray, once imported by another test, replaces it)
    evil = (
        b"\x80\x02}q\x00X\x04\x00\x00\x00dataq\x01cbuiltins\nprint\nq\x02"
        b"X\x05\x00\x00\x00pwnedq\x03\x85q\x04Rq\x05s."
    )
    path = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("cifar-10-batches-py/data_batch_1")
        info.size = len(evil)
        tar.addfile(info, io.BytesIO(evil))
    with pytest.raises(DataError, match=r"refusing to load (__builtin__|builtins)\.print"):
        load_dataset(cfg("cifar10", tmp_path, None))


def test_missing_archive_without_download(tmp_path):
    with pytest.raises(DataError, match="dataset.download=true"):
        load_dataset(cfg("cifar10", tmp_path / "none", "official"))
