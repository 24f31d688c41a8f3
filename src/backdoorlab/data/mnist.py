"""MNIST from its IDX files: an existing folder, or downloaded with checksums."""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from pathlib import Path

import numpy as np
import torch
from pydantic import Field

from backdoorlab.data.base import DatasetConfig, Splits, register_dataset, split_by_seed, subsample
from backdoorlab.data.files import fetch, resolve_root
from backdoorlab.errors import DataError
from backdoorlab.limits import MAX_FILE_BYTES, check_size
from backdoorlab.seeds import HELD_OUT_TEST, stream

MIRRORS = [
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
]
FILES = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
IDX_DTYPES = {0x08: np.uint8}


class MnistConfig(DatasetConfig):
    root: str = Field("data/mnist", description="folder with the IDX files (.gz or raw)")
    download: bool = Field(False, description="fetch missing files from the official mirrors")
    train_size: int | None = Field(None, ge=1, description="training images (default: all)")
    test_size: int | None = Field(None, ge=1, description="test images (default: all)")
    check_md5: bool = Field(True, description="verify .gz files against the official md5s")


def read_idx(path: Path, limit: int = MAX_FILE_BYTES) -> np.ndarray:
    """Parse one IDX file (gzip-compressed or raw) into a numpy array.

    The header is read first and its size checked against `limit` and, for a raw file, against
    the bytes present; the data is then read (decompressed) up to that size and no further.
    """
    opener = gzip.open if path.suffix == ".gz" else open
    what = f"mnist: {path}"
    try:
        size = path.stat().st_size
        check_size(size, limit, what)
        with opener(path, "rb") as fh:
            magic = fh.read(4)
            if len(magic) < 4 or magic[0] != 0 or magic[1] != 0 or magic[2] not in IDX_DTYPES:
                raise DataError(f"{what} is not an unsigned-byte IDX file")
            ndim = magic[3]
            dims = fh.read(4 * ndim)
            if len(dims) < 4 * ndim:
                raise DataError(f"{what} is truncated (header)")
            shape = struct.unpack(f">{ndim}I", dims)
            expected = math.prod(shape)  # a Python int: no overflow on hostile dimensions
            if expected > limit:
                raise DataError(
                    f"{what}: its header says {shape} = {expected:,} bytes, more than the "
                    f"limit of {limit:,}"
                )
            if opener is open and size - 4 - 4 * ndim != expected:
                raise DataError(
                    f"{what} holds {size - 4 - 4 * ndim:,} bytes of data, its header says "
                    f"{expected:,} (truncated file?)"
                )
            raw = fh.read(expected + 1)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{what}: cannot read: {exc}") from None
    if len(raw) > expected:
        raise DataError(f"{what} holds more data than its header says ({expected:,} bytes)")
    if len(raw) < expected:
        raise DataError(
            f"{what} holds {len(raw):,} bytes of data, its header says {expected:,} (truncated?)"
        )
    return np.frombuffer(raw, dtype=np.uint8).reshape(shape)


def _locate(root: Path, name: str, cfg: MnistConfig, required: bool) -> Path | None:
    """The path of an IDX file in `root` (.gz first, then raw), downloading if allowed."""
    gz = root / name
    rawfile = root / name.removesuffix(".gz")
    if rawfile.is_file() and not gz.is_file():
        return rawfile
    if gz.is_file() or (required and cfg.download):
        md5 = FILES[name] if cfg.check_md5 else None
        return fetch(root, name, [m + name for m in MIRRORS], md5, cfg.download, "mnist")
    return None


def _pair(root: Path, prefix: str, cfg: MnistConfig, required: bool):
    img = _locate(root, f"{prefix}-images-idx3-ubyte.gz", cfg, required)
    lab = _locate(root, f"{prefix}-labels-idx1-ubyte.gz", cfg, required)
    if img is None or lab is None:
        return None
    x, y = read_idx(img), read_idx(lab)
    if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
        raise DataError(f"mnist: {img.name} and {lab.name} do not match ({x.shape} vs {y.shape})")
    return torch.from_numpy(x.copy())[:, None], torch.from_numpy(y.astype(np.int64))


@register_dataset("mnist", config=MnistConfig)
def load_mnist(cfg: MnistConfig, seed: int = 0) -> Splits:
    """MNIST (28x28 grayscale, 10 classes); with only the t10k files, split them by seed."""
    root = resolve_root(cfg.root)
    if not root.is_dir() and not cfg.download:
        raise DataError(
            f"mnist: data folder {root} does not exist (put the IDX files there or set "
            "dataset.download=true)"
        )
    test = _pair(root, "t10k", cfg, required=True)
    if test is None:
        raise DataError(f"mnist: no t10k-images/labels IDX files in {root}")
    train = _pair(root, "train", cfg, required=cfg.download)
    if train is None:
        n = len(test[1])
        n_train = cfg.train_size or (n * 4) // 5
        n_test = cfg.test_size or n - n_train
        train, test = split_by_seed(*test, n_train, n_test, seed, f"mnist ({root})")
    else:
        train = subsample(*train, cfg.train_size, seed, "mnist train")
        test = subsample(*test, cfg.test_size, stream(seed, HELD_OUT_TEST), "mnist test")
    return Splits.of("mnist", train, test, [str(i) for i in range(10)])
