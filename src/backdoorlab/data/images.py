"""Decoding and resizing single images at load time (never in the training hot path)."""

from __future__ import annotations

import io
import re
import warnings

import numpy as np
import torch
import torch.nn.functional as F

from backdoorlab.errors import DataError
from backdoorlab.limits import MAX_IMAGE_FILE_BYTES, MAX_IMAGE_PIXELS, check_size

_PPM_HEADER = re.compile(rb"^P6\s+(?:#[^\n]*\s+)*(\d+)\s+(\d+)\s+(\d+)\s")


def decode_ppm(raw: bytes, what: str) -> np.ndarray:
    """A binary PPM (P6, 8-bit) as an HxWx3 uint8 array."""
    m = _PPM_HEADER.match(raw)
    if not m:
        raise DataError(f"{what}: not a binary PPM image")
    w, h, maxval = (int(g) for g in m.groups())
    if maxval != 255:
        raise DataError(f"{what}: PPM with maxval {maxval} is not supported")
    check_pixels(w, h, what)
    body = raw[m.end() : m.end() + w * h * 3]
    if len(body) != w * h * 3:
        raise DataError(f"{what}: PPM image is truncated")
    return np.frombuffer(body, dtype=np.uint8).reshape(h, w, 3)


def check_pixels(width: int, height: int, what: str) -> None:
    """DataError when an image header promises more pixels than MAX_IMAGE_PIXELS."""
    if width * height > MAX_IMAGE_PIXELS:
        raise DataError(
            f"{what}: {width}x{height} pixels, more than the limit of {MAX_IMAGE_PIXELS:,} "
            "(resize it first)"
        )


def _reduction(have: tuple[int, int], want: tuple[int, int]) -> int:
    """The integer factor that keeps (width, height) `have` at least twice (height, width)."""
    return min(have[0] // (2 * want[1]), have[1] // (2 * want[0]))


def decode_image(
    raw: bytes, what: str, channels: int = 3, size: tuple[int, int] | None = None
) -> np.ndarray:
    """A PNG/JPEG/PPM/... file's bytes as an HxWxC uint8 array (decoded with Pillow).

    The pixel count is checked from the header before decoding. With `size` (the side the caller
    will resize to), an image more than twice as large is first box-reduced by an integer factor
    in uint8, keeping at least twice the target resolution for `resize`.
    """
    from PIL import Image, UnidentifiedImageError

    check_size(len(raw), MAX_IMAGE_FILE_BYTES, what)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(raw)) as im:
                check_pixels(*im.size, what)
                factor = 1 if size is None else _reduction(im.size, size)
                if factor >= 2:
                    # JPEG decodes at a DCT scale at once (draft may shrink it already); then
                    # an integer box reduction in uint8
                    im.draft(im.mode, (im.size[0] // factor, im.size[1] // factor))
                    im = im.reduce(max(1, _reduction(im.size, size)))
                im = im.convert("L" if channels == 1 else "RGB")
                arr = np.asarray(im, dtype=np.uint8)
    except (
        UnidentifiedImageError,
        OSError,
        ValueError,
        Image.DecompressionBombError,
        Image.DecompressionBombWarning,
    ) as exc:
        raise DataError(f"{what}: cannot decode image: {exc}") from None
    return arr[:, :, None] if arr.ndim == 2 else arr


def resize(image: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """An HxWxC uint8 image resized (bilinear, antialiased) to a CxHxW uint8 tensor."""
    x = torch.from_numpy(np.array(image, copy=True)).permute(2, 0, 1)[None].float()
    if tuple(x.shape[2:]) != tuple(size):
        x = F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
    return x[0].round().clamp(0, 255).to(torch.uint8)
