"""Caps checked before decoding anything a user or a file supplies, so a hostile file costs one
line instead of the machine's memory."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import IO, Any

from backdoorlab.errors import DataError

MAX_FILE_BYTES = 1 << 30  # any single file or archive member read into memory (1 GiB)
MAX_JSON_BYTES = 64 << 20  # result.json, meta.json and the like
MAX_IMAGE_FILE_BYTES = 64 << 20  # one encoded image (PNG, JPEG, PPM, ...)
MAX_IMAGE_PIXELS = 1 << 24  # 16.7 megapixels (4096 x 4096): decoded RGB is 48 MiB
MAX_MODEL_PARAMETERS = 1 << 30  # 4 GiB of float32 weights before gradients and optimiser state


def check_size(size: int, limit: int, what: str) -> None:
    """DataError when `size` bytes exceed `limit`."""
    if size > limit:
        raise DataError(f"{what}: {size:,} bytes, more than the limit of {limit:,}")


def read_file(path: str | Path, limit: int = MAX_FILE_BYTES, what: str | None = None) -> bytes:
    """The bytes of `path`, its size checked against `limit` before reading."""
    path = Path(path)
    what = what or str(path)
    try:
        check_size(path.stat().st_size, limit, what)
        with open(path, "rb") as fh:
            return read_stream(fh, limit, what)
    except OSError as exc:
        raise DataError(f"{what}: cannot read: {exc.strerror or exc}") from None


def read_stream(fh: IO[bytes] | io.BufferedIOBase, limit: int, what: str) -> bytes:
    """At most `limit` bytes of a (possibly decompressing) stream; more is a DataError."""
    data = fh.read(limit + 1)
    if len(data) > limit:
        raise DataError(f"{what}: more than the limit of {limit:,} bytes (decompressed)")
    return data


def read_json(path: str | Path, limit: int = MAX_JSON_BYTES, what: str | None = None) -> Any:
    """A JSON file, size-checked before parsing; DataError on anything unreadable."""
    raw = read_file(path, limit, what)
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise DataError(f"{what or path}: not valid JSON: {exc}") from None
