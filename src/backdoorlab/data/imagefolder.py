"""Image folders with one sub-folder per class (Tiny-ImageNet, ImageNet subsets, your own)."""

from __future__ import annotations

from pathlib import Path

import torch
from pydantic import Field

from backdoorlab.data.base import (
    Dataset,
    DatasetConfig,
    Splits,
    channel_stats,
    register_dataset,
    split_by_seed,
)
from backdoorlab.data.files import resolve_root
from backdoorlab.data.images import decode_image, resize
from backdoorlab.errors import DataError
from backdoorlab.limits import MAX_IMAGE_FILE_BYTES, read_file

EXTENSIONS = {".png", ".jpg", ".jpeg", ".ppm", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


class ImageFolderConfig(DatasetConfig):
    root: str = Field(..., description="folder with train/ and test/ (or only class folders)")
    train_dir: str = Field("train", description="sub-folder of training class folders")
    test_dir: str = Field("test", description="sub-folder of test class folders ('val' works)")
    size: int = Field(64, ge=4, description="side of the resized square images")
    channels: int = Field(3, description="1 (grayscale) or 3 (RGB)")
    test_fraction: float = Field(0.2, gt=0, lt=1, description="used when there is no test folder")


def _class_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _read(folder: Path, classes: list[str], cfg: ImageFolderConfig):
    xs, ys = [], []
    for label, name in enumerate(classes):
        cdir = folder / name
        files = (
            sorted(p for p in cdir.rglob("*") if p.suffix.lower() in EXTENSIONS)
            if cdir.is_dir()
            else []
        )
        for f in files:
            raw = read_file(f, MAX_IMAGE_FILE_BYTES, f"imagefolder: {f}")
            img = decode_image(raw, str(f), cfg.channels, (cfg.size, cfg.size))
            xs.append(resize(img, (cfg.size, cfg.size)))
            ys.append(label)
    if not xs:
        raise DataError(f"imagefolder: no images found under {folder}")
    return torch.stack(xs), torch.tensor(ys, dtype=torch.int64)


@register_dataset("imagefolder", config=ImageFolderConfig)
def load_imagefolder(cfg: ImageFolderConfig, seed: int = 0) -> Splits:
    """Images in class folders, resized to `size`; classes are the training folder names."""
    if cfg.channels not in (1, 3):
        raise DataError("imagefolder: channels must be 1 or 3")
    root = resolve_root(cfg.root)
    if not root.is_dir():
        raise DataError(f"imagefolder: data folder {root} does not exist")
    train_root, test_root = root / cfg.train_dir, root / cfg.test_dir
    if train_root.is_dir() and test_root.is_dir():
        classes = [p.name for p in _class_dirs(train_root)]
        train, test = _read(train_root, classes, cfg), _read(test_root, classes, cfg)
    else:
        classes = [p.name for p in _class_dirs(root)]
        x, y = _read(root, classes, cfg)
        n_test = max(1, round(len(y) * cfg.test_fraction))
        train, test = split_by_seed(x, y, len(y) - n_test, n_test, seed, f"imagefolder {root}")
    if len(classes) < 2:
        raise DataError(f"imagefolder: {root} needs at least two class folders")
    mean, std = channel_stats(train[0])
    return Splits(
        Dataset("imagefolder", *train, classes, mean, std),
        Dataset("imagefolder", *test, classes, mean, std),
    )
