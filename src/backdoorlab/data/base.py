"""The dataset type: uint8 images and int64 labels on the run's device, plus metadata."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch
from pydantic import Field

from backdoorlab.config_base import Section
from backdoorlab.errors import DataError
from backdoorlab.registry import Registry


@dataclass(frozen=True)
class InputSpec:
    """What a model or trigger is built for: channels, image size, class count, normalisation."""

    channels: int
    size: tuple[int, int]
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]


@dataclass
class Dataset:
    """Images uint8 [N,C,H,W] and labels int64 [N] with class names and per-channel mean/std."""

    name: str
    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    extra: dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.ndim != 4:
            raise DataError(
                f"dataset '{self.name}': images must be uint8 [N,C,H,W], got "
                f"{self.images.dtype} {list(self.images.shape)}"
            )
        if self.labels.dtype != torch.int64 or self.labels.shape != self.images.shape[:1]:
            raise DataError(f"dataset '{self.name}': labels must be int64 [N] matching the images")
        if len(self.mean) != self.channels or len(self.std) != self.channels:
            raise DataError(f"dataset '{self.name}': mean/std need one value per channel")
        if len(self.labels) and (self.labels.min() < 0 or self.labels.max() >= len(self.classes)):
            raise DataError(f"dataset '{self.name}': labels outside 0..{len(self.classes) - 1}")

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def channels(self) -> int:
        return int(self.images.shape[1])

    @property
    def size(self) -> tuple[int, int]:
        return int(self.images.shape[2]), int(self.images.shape[3])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def spec(self) -> InputSpec:
        return InputSpec(self.channels, self.size, self.num_classes, self.mean, self.std)

    @property
    def device(self) -> torch.device:
        return self.images.device

    def to(self, device: torch.device | str) -> Dataset:
        """This dataset on `device`."""
        return replace(self, images=self.images.to(device), labels=self.labels.to(device))

    def subset(self, indices: torch.Tensor) -> Dataset:
        """The samples at `indices` (metadata kept)."""
        indices = indices.to(self.images.device)
        return replace(self, images=self.images[indices], labels=self.labels[indices])

    def with_data(self, images: torch.Tensor, labels: torch.Tensor) -> Dataset:
        """A copy with new images and labels (metadata kept)."""
        return replace(self, images=images, labels=labels)

    def floats(self, indices: torch.Tensor | None = None) -> torch.Tensor:
        """Images (or those at `indices`) as float [0,1]."""
        x = self.images if indices is None else self.images[indices]
        return x.float().div_(255)

    def head(self, n: int = 2) -> torch.Tensor:
        """The first `n` images as floats (an example batch to trace a model's layers with)."""
        return self.images[:n].float().div_(255)


@dataclass
class Splits:
    """The train and test parts of a dataset."""

    train: Dataset
    test: Dataset

    def to(self, device: torch.device | str) -> Splits:
        return Splits(self.train.to(device), self.test.to(device))

    @classmethod
    def of(
        cls,
        name: str,
        train: tuple[torch.Tensor, torch.Tensor],
        test: tuple[torch.Tensor, torch.Tensor],
        classes: list[str],
        stats: tuple[tuple[float, ...], tuple[float, ...]] | None = None,
    ) -> Splits:
        """Two Datasets from (images, labels) pairs, normalised by `stats` (default: the
        training images' channel mean and std)."""
        mean, std = stats or channel_stats(train[0])
        return cls(
            Dataset(name, *train, classes, mean, std), Dataset(name, *test, classes, mean, std)
        )


class DatasetConfig(Section):
    """Options every dataset accepts."""

    quiet = ("seed",)

    seed: int | None = Field(
        None,
        ge=0,
        description="seed of the train/test split and subsets (default: the run's seed); fixed, "
        "it gives every model of a zoo the same data, whatever the run's seed",
    )


DATASETS: Registry = Registry("dataset", DatasetConfig)
register_dataset = DATASETS.register


def channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of uint8 images in [0,1] units."""
    x = images.double().div(255)
    mean = x.mean(dim=(0, 2, 3))
    std = x.std(dim=(0, 2, 3)).clamp_min(1e-3)
    return tuple(round(float(v), 4) for v in mean), tuple(round(float(v), 4) for v in std)


def split_by_seed(
    images: torch.Tensor, labels: torch.Tensor, n_train: int, n_test: int, seed: int, what: str
) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """Disjoint random train/test parts of one pool, the same for the same seed."""
    n = len(labels)
    if n_train < 1 or n_test < 1 or n_train + n_test > n:
        raise DataError(
            f"{what}: train_size {n_train} + test_size {n_test} must be positive and at most "
            f"the {n} available images"
        )
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    tr, te = perm[:n_train], perm[n_train : n_train + n_test]
    return (images[tr], labels[tr]), (images[te], labels[te])


def subsample(
    images: torch.Tensor, labels: torch.Tensor, n: int | None, seed: int, what: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """A random `n` of the samples, the same for the same seed (None keeps all)."""
    if n is None or n == len(labels):
        return images, labels
    if n > len(labels):
        raise DataError(f"{what}: asked for {n} images, only {len(labels)} available")
    keep = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))[:n]
    return images[keep], labels[keep]


def load_dataset(section: DatasetConfig, seed: int = 0) -> Splits:
    """Load the train/test splits that `section` names (on the CPU)."""
    loader = DATASETS.get(section.name)
    return loader(section, seed if section.seed is None else section.seed)
