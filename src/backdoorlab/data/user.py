"""A user's own data as a Dataset: a folder of class sub-folders, arrays (.npz or safetensors with
x and y), tensors, or any registered dataset."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from backdoorlab.data.base import DATASETS, Dataset, channel_stats, load_dataset
from backdoorlab.data.imagefolder import class_dirs, image_files, read_images
from backdoorlab.errors import ConfigError, DataError
from backdoorlab.limits import (
    MAX_FILE_BYTES,
    MAX_IMAGE_FILE_BYTES,
    check_npy_member,
    check_size,
)

DataSource = Dataset | tuple | str | Path | dict


def _images_to_uint8(x: torch.Tensor, what: str) -> torch.Tensor:
    """uint8 [N,C,H,W] from uint8 or [0,1] float images in NCHW, NHWC or NHW."""
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4:
        raise DataError(
            f"{what}: images must be [N,H,W], [N,C,H,W] or [N,H,W,C], got {list(x.shape)}"
        )
    if x.shape[1] not in (1, 3) and x.shape[3] in (1, 3):
        x = x.permute(0, 3, 1, 2)
    if x.shape[1] not in (1, 3):
        raise DataError(f"{what}: images need 1 or 3 channels, got shape {list(x.shape)}")
    if x.dtype == torch.uint8:
        return x.contiguous()
    if not x.is_floating_point():
        raise DataError(f"{what}: images must be uint8 or floats in [0,1], got {x.dtype}")
    if len(x) and (x.min() < 0 or x.max() > 1):
        raise DataError(f"{what}: float images must lie in [0,1]")
    return (x * 255).round().to(torch.uint8).contiguous()


def from_tensors(
    x: torch.Tensor | np.ndarray,
    y: torch.Tensor | np.ndarray,
    *,
    name: str = "tensors",
    num_classes: int | None = None,
) -> Dataset:
    """A Dataset from images (uint8 or [0,1] floats; NCHW, NHWC or NHW) and integer labels."""
    x = torch.as_tensor(np.asarray(x) if isinstance(x, np.ndarray) else x).cpu()
    y = torch.as_tensor(np.asarray(y) if isinstance(y, np.ndarray) else y).cpu()
    images = _images_to_uint8(x, name)
    if y.ndim != 1 or len(y) != len(images) or y.is_floating_point() or y.dtype == torch.bool:
        raise DataError(f"{name}: labels must be integers [N] matching {len(images)} images")
    if len(y) == 0:
        raise DataError(f"{name}: no images")
    labels = y.to(torch.int64)
    if labels.min() < 0:
        raise DataError(f"{name}: negative labels")
    k = num_classes if num_classes is not None else int(labels.max()) + 1
    if int(labels.max()) >= k:
        raise DataError(f"{name}: labels go up to {int(labels.max())}, the model has {k} classes")
    mean, std = channel_stats(images)
    return Dataset(name, images, labels, [str(i) for i in range(k)], mean, std)


def _arrays(path: Path) -> tuple[Any, Any]:
    check_size(path.stat().st_size, MAX_FILE_BYTES, str(path))
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            arrays = load_file(str(path))
        except (SafetensorError, OSError) as exc:
            raise DataError(f"{path}: not a readable safetensors file: {exc}") from None
    else:
        try:
            with np.load(path, allow_pickle=False) as npz:  # never unpickle
                for key in ("x", "y"):
                    if key in npz.files:  # the header's shape, before numpy allocates it
                        check_npy_member(npz.zip, f"{key}.npy", f"{path}: {key}")
                arrays = {k: npz[k] for k in npz.files if k in ("x", "y")}
        except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
            raise DataError(f"{path}: not a readable .npz of arrays: {exc}") from None
    missing = [k for k in ("x", "y") if k not in arrays]
    if missing:
        raise DataError(f"{path}: holds no {' or '.join(missing)} (images x, labels y)")
    return arrays["x"], arrays["y"]


def read_class_folders(
    root: Path,
    *,
    size: tuple[int, int] | None = None,
    channels: int | None = None,
    num_classes: int | None = None,
) -> Dataset:
    """Images in one sub-folder per class (sorted names are the labels 0, 1, ...), resized to
    `size` (default: the first image's) with `channels` (default: 1 if every image is grey)."""
    from PIL import Image

    classes = [d.name for d in class_dirs(root)]
    if not classes:
        raise DataError(f"{root}: no class sub-folders (one folder of images per class)")
    files = image_files(root, classes)
    if not files:
        raise DataError(f"{root}: no images in its class folders")
    if channels is None or size is None:
        grey, first = True, None
        for f, _ in files:  # headers only: Pillow opens lazily
            try:
                check_size(f.stat().st_size, MAX_IMAGE_FILE_BYTES, str(f))
                with Image.open(f) as im:
                    grey = grey and im.mode in ("1", "L", "I;16", "I", "F")
                    first = first or (im.size[1], im.size[0])
            except Exception as exc:  # Pillow raises many kinds on a bad file
                raise DataError(f"{f}: cannot decode image: {exc}") from None
        channels = channels or (1 if grey else 3)
        size = size or first
    images, labels = read_images(files, channels, size)
    k = num_classes if num_classes is not None else len(classes)
    if k < len(classes):
        raise DataError(f"{root}: {len(classes)} class folders, but {k} classes were given")
    names = classes + [str(i) for i in range(len(classes), k)]
    mean, std = channel_stats(images)
    return Dataset(root.name, images, labels, names, mean, std)


def load_user_data(
    source: DataSource,
    *,
    split: str = "test",
    num_classes: int | None = None,
    size: tuple[int, int] | None = None,
    channels: int | None = None,
    seed: int = 0,
) -> Dataset:
    """A Dataset (on the CPU) from what a user has: a Dataset; (x, y) tensors or arrays; a folder
    of class folders; an .npz or .safetensors file with x and y; a registered dataset's name or
    config mapping (its `split`, 'train' or 'test')."""
    if isinstance(source, Dataset):
        return source.to("cpu")
    if isinstance(source, tuple):
        if len(source) != 2:
            raise ConfigError("data: give (images, labels)")
        return from_tensors(*source, num_classes=num_classes)
    if isinstance(source, dict) or (
        isinstance(source, str) and not Path(source).exists() and source in DATASETS
    ):
        raw = source if isinstance(source, dict) else {"name": source}
        if split not in ("train", "test"):
            raise ConfigError(f"data split: 'train' or 'test', not {split!r}")
        splits = load_dataset(DATASETS.validate(raw), seed)
        return getattr(splits, split)
    path = Path(source)
    if path.is_dir():
        return read_class_folders(path, size=size, channels=channels, num_classes=num_classes)
    if path.suffix in (".npz", ".safetensors") and path.is_file():
        x, y = _arrays(path)
        return from_tensors(x, y, name=path.stem, num_classes=num_classes)
    if not path.exists():
        raise DataError(
            f"`data` {source}: no such folder or file, and no registered dataset of that name"
        )
    raise DataError(f"`data` {source}: a folder of class folders, an .npz or a .safetensors file")
