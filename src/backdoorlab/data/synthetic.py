"""Procedural images of any size and class count, for tests and benchmarks."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field

from backdoorlab.data.base import DatasetConfig, Splits, register_dataset
from backdoorlab.limits import Need, check_memory


class SyntheticConfig(DatasetConfig):
    num_classes: int = Field(10, ge=2)
    channels: int = Field(3, ge=1)
    size: int = Field(32, ge=4)
    train_size: int = Field(1000, ge=1)
    test_size: int = Field(200, ge=1)
    noise: float = Field(0.15, ge=0, le=1, description="std of per-pixel noise, in [0,1] units")


def _make(cfg: SyntheticConfig, n: int, prototypes: torch.Tensor, g: torch.Generator):
    labels = torch.randint(0, cfg.num_classes, (n,), generator=g)
    x = prototypes[labels]
    contrast = 0.7 + 0.6 * torch.rand(n, 1, 1, 1, generator=g)
    brightness = 0.2 * (torch.rand(n, 1, 1, 1, generator=g) - 0.5)
    shift = torch.randint(-2, 3, (2,), generator=g)
    x = torch.roll(x, shifts=(int(shift[0]), int(shift[1])), dims=(2, 3))
    x = (x - 0.5) * contrast + 0.5 + brightness
    x = x + cfg.noise * torch.randn(x.shape, generator=g)
    return x.clamp(0, 1).mul(255).round().to(torch.uint8), labels


@register_dataset("synthetic", config=SyntheticConfig)
def load_synthetic(cfg: SyntheticConfig, seed: int = 0) -> Splits:
    """Each class a smooth random colour pattern; samples vary contrast, brightness and noise."""
    n, values = cfg.train_size + cfg.test_size, cfg.channels * cfg.size**2
    shape = f"{cfg.channels}x{cfg.size}x{cfg.size}"
    images = f"train_size + test_size = {n:,} images of channels x size x size = {shape}"
    prototypes = f"num_classes = {cfg.num_classes:,} prototypes"
    check_memory(
        [
            Need("dataset", images, 8 * n * values),
            Need("dataset", prototypes, 4 * cfg.num_classes * values),
        ]
    )
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(cfg.num_classes, cfg.channels, 4, 4, generator=g)
    prototypes = F.interpolate(
        coarse, size=(cfg.size, cfg.size), mode="bicubic", align_corners=True
    ).clamp(0, 1)
    train = _make(cfg, cfg.train_size, prototypes, g)
    test = _make(cfg, cfg.test_size, prototypes, g)
    return Splits.of("synthetic", train, test, [f"class{i}" for i in range(cfg.num_classes)])
