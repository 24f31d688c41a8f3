"""CIFAR-10 and CIFAR-100 from the official python archives (md5-checked, read in place)."""

from __future__ import annotations

import io
import pickle
import tarfile
import zlib
from dataclasses import dataclass

import numpy as np
import torch
from pydantic import Field

from backdoorlab.data.base import DatasetConfig, Splits, register_dataset, subsample
from backdoorlab.data.files import fetch, resolve_root
from backdoorlab.errors import DataError
from backdoorlab.limits import MAX_FILE_BYTES, check_size, read_stream
from backdoorlab.seeds import HELD_OUT_TEST, stream

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.247, 0.243, 0.261)
CIFAR100_MEAN = (0.5071, 0.4865, 0.4409)
CIFAR100_STD = (0.2673, 0.2564, 0.2762)


@dataclass(frozen=True)
class CifarSpec:
    name: str
    archive: str
    md5: str
    folder: str
    train: tuple[str, ...]
    test: str
    meta: str
    label_key: str
    names_key: str
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @property
    def url(self) -> str:
        return f"https://www.cs.toronto.edu/~kriz/{self.archive}"


CIFAR10 = CifarSpec(
    "cifar10", "cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a",
    "cifar-10-batches-py", tuple(f"data_batch_{i}" for i in range(1, 6)), "test_batch",
    "batches.meta", "labels", "label_names", CIFAR10_MEAN, CIFAR10_STD,
)  # fmt: skip
CIFAR100 = CifarSpec(
    "cifar100", "cifar-100-python.tar.gz", "eb9058c3a382ffc7106e4002c42a8d85",
    "cifar-100-python", ("train",), "test", "meta", "fine_labels", "fine_label_names",
    CIFAR100_MEAN, CIFAR100_STD,
)  # fmt: skip


class CifarConfig(DatasetConfig):
    root: str = Field("data/cifar", description="folder holding the official .tar.gz archive")
    download: bool = Field(False, description="fetch the archive if it is missing")
    md5: str | None = Field("official", description="'official', a hex digest, or null to skip")
    train_size: int | None = Field(None, ge=1, description="training images (default: all)")
    test_size: int | None = Field(None, ge=1, description="test images (default: all)")


class _ArraysOnly(pickle.Unpickler):
    """An unpickler that rebuilds only plain containers and numpy arrays, never arbitrary code."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),  # how protocol-2 pickles store byte payloads
    }

    def find_class(self, module: str, name: str):  # noqa: D102
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def _load_batch(tar: tarfile.TarFile, member: str, what: str) -> dict[str, object]:
    try:
        info = tar.getmember(member)
        check_size(info.size, MAX_FILE_BYTES, f"{what}: {member}")
        fh = tar.extractfile(info)
        if fh is None:
            raise KeyError(member)
        raw = read_stream(fh, MAX_FILE_BYTES, f"{what}: {member}")
        obj = _ArraysOnly(io.BytesIO(raw), encoding="latin1").load()
    except KeyError:
        raise DataError(f"{what}: archive has no member {member}") from None
    except (
        pickle.UnpicklingError,
        EOFError,
        tarfile.TarError,
        OSError,
        ValueError,
        zlib.error,
    ) as exc:
        raise DataError(f"{what}: cannot read {member}: {exc}") from None
    if not isinstance(obj, dict):
        raise DataError(f"{what}: {member} is not a CIFAR batch")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in obj.items()}


def load_cifar(spec: CifarSpec, cfg: CifarConfig, seed: int) -> Splits:
    """Read the train/test batches of a CIFAR archive into uint8 tensors."""
    root = resolve_root(cfg.root)
    md5 = spec.md5 if cfg.md5 == "official" else cfg.md5
    path = fetch(root, spec.archive, [spec.url], md5, cfg.download, spec.name)
    try:
        tar = tarfile.open(path, "r:gz")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DataError(f"{spec.name}: {path} is not a readable tar.gz archive: {exc}") from None

    def part(members: tuple[str, ...]) -> tuple[torch.Tensor, torch.Tensor]:
        xs, ys = [], []
        for m in members:
            batch = _load_batch(tar, f"{spec.folder}/{m}", spec.name)
            try:
                x = np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
                y = np.asarray(batch[spec.label_key], dtype=np.int64)
            except (KeyError, ValueError) as exc:
                raise DataError(f"{spec.name}: malformed batch {m}: {exc}") from None
            if len(x) != len(y):
                raise DataError(f"{spec.name}: batch {m} has {len(x)} images, {len(y)} labels")
            xs.append(x)
            ys.append(y)
        return torch.from_numpy(np.concatenate(xs)), torch.from_numpy(np.concatenate(ys))

    with tar:
        train = subsample(*part(spec.train), cfg.train_size, seed, f"{spec.name} train")
        test = subsample(
            *part((spec.test,)), cfg.test_size, stream(seed, HELD_OUT_TEST), f"{spec.name} test"
        )
        meta = _load_batch(tar, f"{spec.folder}/{spec.meta}", spec.name)
    classes = [str(c) for c in meta.get(spec.names_key, [])]
    n_classes = int(max(train[1].max(), test[1].max())) + 1
    if len(classes) < n_classes:
        classes = [str(i) for i in range(n_classes)]
    return Splits.of(spec.name, train, test, classes, (spec.mean, spec.std))


@register_dataset("cifar10", config=CifarConfig)
def load_cifar10(cfg: CifarConfig, seed: int = 0) -> Splits:
    """CIFAR-10 (32x32 RGB, 10 classes) from cifar-10-python.tar.gz."""
    return load_cifar(CIFAR10, cfg, seed)


@register_dataset("cifar100", config=CifarConfig)
def load_cifar100(cfg: CifarConfig, seed: int = 0) -> Splits:
    """CIFAR-100 (32x32 RGB, 100 fine classes) from cifar-100-python.tar.gz."""
    return load_cifar(CIFAR100, cfg, seed)
