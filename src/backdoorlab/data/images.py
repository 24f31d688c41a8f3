"""Decoding and resizing single images at load time (never in the training hot path)."""

from __future__ import annotations

import io
import re

import numpy as np
import torch
import torch.nn.functional as F

from backdoorlab.errors import DataError

_PPM_HEADER = re.compile(rb"^P6\s+(?:#[^\n]*\s+)*(\d+)\s+(\d+)\s+(\d+)\s")


def decode_ppm(raw: bytes, what: str) -> np.ndarray:
    """A binary PPM (P6, 8-bit) as an HxWx3 uint8 array."""
    m = _PPM_HEADER.match(raw)
    if not m:
        raise DataError(f"{what}: not a binary PPM image")
    w, h, maxval = (int(g) for g in m.groups())
    if maxval != 255:
        raise DataError(f"{what}: PPM with maxval {maxval} is not supported")
    body = raw[m.end() : m.end() + w * h * 3]
    if len(body) != w * h * 3:
        raise DataError(f"{what}: PPM image is truncated")
    return np.frombuffer(body, dtype=np.uint8).reshape(h, w, 3)


def decode_image(raw: bytes, what: str, channels: int = 3) -> np.ndarray:
    """A PNG/JPEG/PPM/... file's bytes as an HxWxC uint8 array (decoded with Pillow)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(raw)) as im:
            im = im.convert("L" if channels == 1 else "RGB")
            arr = np.asarray(im, dtype=np.uint8)
    except (UnidentifiedImageError, OSError) as exc:
        raise DataError(f"{what}: cannot decode image: {exc}") from None
    return arr[:, :, None] if arr.ndim == 2 else arr


def resize(image: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """An HxWxC uint8 image resized (bilinear, antialiased) to a CxHxW uint8 tensor."""
    x = torch.from_numpy(np.array(image, copy=True)).permute(2, 0, 1)[None].float()
    if tuple(x.shape[2:]) != tuple(size):
        x = F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
    return x[0].round().clamp(0, 255).to(torch.uint8)
