"""Image folders with one sub-folder per class (Tiny-ImageNet, ImageNet subsets, your own)."""

from __future__ import annotations

from pathlib import Path

import torch
from pydantic import Field

from backdoorlab.data.base import DatasetConfig, Splits, register_dataset, split_by_seed
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


def class_dirs(folder: Path) -> list[Path]:
    """The class folders of `folder`, sorted by name (hidden ones left out)."""
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def image_files(folder: Path, classes: list[str]) -> list[tuple[Path, int]]:
    """(image file, label) for every image under folder/<class>, labels in `classes` order."""
    return [
        (f, label)
        for label, name in enumerate(classes)
        if (folder / name).is_dir()
        for f in sorted((folder / name).rglob("*"))
        if f.suffix.lower() in EXTENSIONS and f.is_file()
    ]


def read_images(
    files: list[tuple[Path, int]], channels: int, size: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """The files decoded (size-checked first) and resized to `size`, and their labels."""
    xs = []
    for f, _ in files:
        raw = read_file(f, MAX_IMAGE_FILE_BYTES, f"imagefolder: {f}")
        xs.append(resize(decode_image(raw, str(f), channels, size), size))
    return torch.stack(xs), torch.tensor([label for _, label in files], dtype=torch.int64)


def _read(folder: Path, classes: list[str], cfg: ImageFolderConfig):
    files = image_files(folder, classes)
    if not files:
        raise DataError(f"imagefolder: no images found under {folder}")
    return read_images(files, cfg.channels, (cfg.size, cfg.size))


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
        classes = [p.name for p in class_dirs(train_root)]
        train, test = _read(train_root, classes, cfg), _read(test_root, classes, cfg)
    else:
        classes = [p.name for p in class_dirs(root)]
        x, y = _read(root, classes, cfg)
        n_test = max(1, round(len(y) * cfg.test_fraction))
        train, test = split_by_seed(x, y, len(y) - n_test, n_test, seed, f"imagefolder {root}")
    if len(classes) < 2:
        raise DataError(f"imagefolder: {root} needs at least two class folders")
    return Splits.of("imagefolder", train, test, classes)
