"""`photos`: a natural-image CPU-scale dataset cut from ten public-domain scikit-image photos."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator

from backdoorlab.data.base import DatasetConfig, Splits, register_dataset
from backdoorlab.errors import ConfigError

PHOTOS = (
    "astronaut", "chelsea", "coffee", "hubble_deep_field", "immunohistochemistry", "retina",
    "rocket", "brick", "grass", "gravel",
)  # fmt: skip


class PhotosConfig(DatasetConfig):
    train_size: int = Field(8000, ge=10)
    test_size: int = Field(2000, ge=10)
    size: int = Field(32, ge=8, description="side of the resized crops")
    min_crop: int = Field(32, ge=4, description="smallest square crop, in photo pixels")
    max_crop: int = Field(96, ge=4, description="largest square crop, in photo pixels")
    train_fraction: float = Field(
        0.7, gt=0, lt=1, description="training crops come from this left share of each photo"
    )

    @model_validator(mode="after")
    def _crops(self) -> PhotosConfig:
        if self.min_crop > self.max_crop:
            raise ValueError("min_crop must not exceed max_crop")
        return self


def _photo(name: str) -> torch.Tensor:
    from skimage import data

    img = torch.from_numpy(getattr(data, name)().copy())
    if img.ndim == 2:
        img = img[:, :, None].expand(-1, -1, 3)
    return img.permute(2, 0, 1).float()


def _crops(photos, region, n, cfg, g) -> tuple[torch.Tensor, torch.Tensor]:
    labels = torch.arange(n) % len(photos)
    labels = labels[torch.randperm(n, generator=g)]
    sizes = torch.randint(cfg.min_crop, cfg.max_crop + 1, (n,), generator=g)
    out = torch.empty(n, 3, cfg.size, cfg.size, dtype=torch.uint8)
    for i in range(n):  # load time only: one antialiased resize per crop
        photo, s = photos[int(labels[i])], int(sizes[i])
        h, w = photo.shape[1:]
        x0, x1 = region(w)
        top = int(torch.randint(0, h - s + 1, (1,), generator=g))
        left = x0 + int(torch.randint(0, x1 - x0 - s + 1, (1,), generator=g))
        crop = photo[None, :, top : top + s, left : left + s]
        small = F.interpolate(
            crop, size=(cfg.size, cfg.size), mode="bilinear", antialias=True, align_corners=False
        )
        out[i] = small[0].round().clamp(0, 255).to(torch.uint8)
    return out, labels


@register_dataset("photos", config=PhotosConfig)
def load_photos(cfg: PhotosConfig, seed: int = 0) -> Splits:
    """Ten classes, one per scikit-image photo; random square crops resized to `size`.

    Training crops come from the left `train_fraction` of each photo, test crops from the rest,
    so no test pixel is ever seen in training.
    """
    photos = [_photo(name) for name in PHOTOS]
    narrowest = min(int(p.shape[2] * (1 - cfg.train_fraction)) for p in photos)
    if cfg.max_crop > min(narrowest, min(int(p.shape[1]) for p in photos)):
        raise ConfigError(
            f"dataset.max_crop: {cfg.max_crop} px exceeds the narrowest photo region "
            f"({narrowest} px)"
        )
    g = torch.Generator().manual_seed(seed)

    def left(w: int) -> tuple[int, int]:
        return 0, int(w * cfg.train_fraction)

    def right(w: int) -> tuple[int, int]:
        return int(w * cfg.train_fraction), w

    xtr, ytr = _crops(photos, left, cfg.train_size, cfg, g)
    xte, yte = _crops(photos, right, cfg.test_size, cfg, g)
    return Splits.of("photos", (xtr, ytr), (xte, yte), list(PHOTOS))
