"""scikit-learn's 1,797 real 8x8 handwritten digits: the embedded default dataset."""

from __future__ import annotations

import torch
from pydantic import Field

from backdoorlab.data.base import DatasetConfig, Splits, register_dataset, split_by_seed


class DigitsConfig(DatasetConfig):
    train_size: int = Field(1437, ge=1, description="training images (of 1,797)")
    test_size: int = Field(360, ge=1, description="test images, disjoint from training")


@register_dataset("digits", config=DigitsConfig)
def load_digits(cfg: DigitsConfig, seed: int = 0) -> Splits:
    """scikit-learn's handwritten digits (8x8 grayscale, 10 classes), split by seed."""
    from sklearn.datasets import load_digits as sk_digits

    raw = sk_digits()
    images = torch.from_numpy(raw.images).mul(255 / 16).round().clamp(0, 255).to(torch.uint8)
    images = images[:, None]
    labels = torch.from_numpy(raw.target).long()
    (xtr, ytr), (xte, yte) = split_by_seed(
        images, labels, cfg.train_size, cfg.test_size, seed, "digits"
    )
    return Splits.of("digits", (xtr, ytr), (xte, yte), [str(i) for i in range(10)])
