"""Caps checked before decoding anything a user or a file supplies, so a hostile file costs one
line instead of the machine's memory."""

from __future__ import annotations

import io
import json
import math
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from backdoorlab.errors import ConfigError, DataError

MAX_FILE_BYTES = 1 << 30  # any single file or archive member read into memory (1 GiB)
MAX_JSON_BYTES = 64 << 20  # result.json, meta.json and the like
MAX_IMAGE_FILE_BYTES = 64 << 20  # one encoded image (PNG, JPEG, PPM, ...)
MAX_IMAGE_PIXELS = 1 << 24  # 16.7 megapixels (4096 x 4096): decoded RGB is 48 MiB
MAX_MODEL_PARAMETERS = 1 << 30  # 4 GiB of float32 weights before gradients and optimiser state


DEFAULT_MEMORY_SHARE = 0.8  # of the run device's memory a config may ask for


@dataclass(frozen=True)
class Need:
    """Memory a config asks for: the key that sets it, what it is, and its bytes."""

    key: str
    what: str
    bytes: int


def device_memory(device: Any = None) -> int:
    """Bytes of memory of `device`: a CUDA device's own, else this machine's RAM."""
    if device is not None and getattr(device, "type", str(device)).startswith("cuda"):
        import torch

        return int(torch.cuda.get_device_properties(device).total_memory)
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def check_memory(
    needs: list[Need], share: float = DEFAULT_MEMORY_SHARE, device: Any = None
) -> None:
    """ConfigError naming the largest need when all of `needs` together pass `share` of the
    device's memory; called before the first of them is allocated."""
    limit = int(share * device_memory(device))
    total = sum(n.bytes for n in needs)
    if total > limit:
        top = max(needs, key=lambda n: n.bytes)
        raise ConfigError(
            f"{top.key}: the run would need about {_gib(total)} ({top.what}: {_gib(top.bytes)}), "
            f"more than the limit of {_gib(limit)} ({share:.0%} of this machine's memory, "
            "set by performance.memory_share)"
        )


def _gib(n: int) -> str:
    return f"{n / 2**30:,.1f} GiB" if n >= 2**27 else f"{n / 2**20:,.1f} MiB"


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


def check_npy_member(archive: zipfile.ZipFile, name: str, what: str) -> None:
    """DataError unless the .npy header of member `name` promises no more bytes than the member
    holds: numpy allocates the header's shape before it reads a byte of data."""
    import numpy as np

    info = archive.getinfo(name)
    check_size(info.file_size, MAX_FILE_BYTES, what)
    readers = {
        (1, 0): np.lib.format.read_array_header_1_0,
        (2, 0): np.lib.format.read_array_header_2_0,
    }
    with archive.open(info) as fh:
        try:
            version = np.lib.format.read_magic(fh)
            if version not in readers:
                raise DataError(f"{what}: .npy format version {version} is not supported")
            shape, _, dtype = readers[version](fh)
            header = fh.tell()
        except ValueError as exc:
            raise DataError(f"{what}: not a readable .npy header: {exc}") from None
    promised = math.prod(shape) * dtype.itemsize  # a Python int: no overflow
    held = info.file_size - header
    if promised > held:
        raise DataError(
            f"{what}: its header says shape {tuple(shape)} of {dtype} = {promised:,} bytes, "
            f"the file holds {held:,}"
        )


def read_json(path: str | Path, limit: int = MAX_JSON_BYTES, what: str | None = None) -> Any:
    """A JSON file, size-checked before parsing; DataError on anything unreadable."""
    raw = read_file(path, limit, what)
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise DataError(f"{what or path}: not valid JSON: {exc}") from None
