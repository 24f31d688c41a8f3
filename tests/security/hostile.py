"""Hostile files in the real formats, and a probe that loads one in a fresh process and reports
its error line and peak memory growth: `python -m tests.security.hostile KIND PATH`."""

from __future__ import annotations

import gzip
import json
import resource
import struct
import sys
import zipfile
import zlib
from pathlib import Path

MB = 1 << 20


def idx_gzip_bomb(path: Path, claimed: tuple[int, ...] = (10, 28, 28), mb: int = 200) -> Path:
    """An IDX .gz whose header promises a few images and whose stream inflates to `mb` MB."""
    header = bytes([0, 0, 0x08, len(claimed)]) + struct.pack(f">{len(claimed)}I", *claimed)
    with gzip.open(path, "wb", compresslevel=9) as fh:
        fh.write(header)
        block = bytes(MB)
        for _ in range(mb):
            fh.write(block)
    return path


def idx_overflowing_header(path: Path) -> Path:
    """An IDX file whose four dimensions multiply past 64 bits (np.prod overflows on them)."""
    path.write_bytes(bytes([0, 0, 0x08, 4]) + struct.pack(">4I", *[0xFFFFFFFF] * 4) + bytes(16))
    return path


def png(path: Path, width: int, height: int) -> Path:
    """A grayscale PNG of zeros, written row by row (never held whole in memory)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    comp = zlib.compressobj(9)
    row = bytes(width + 1)  # filter byte 0 + the row
    parts = []
    for _ in range(height):
        parts.append(comp.compress(row))
    parts.append(comp.flush())
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", b"".join(parts))
        + chunk(b"IEND", b"")
    )
    return path


def gtsrb_zip_bomb(root: Path, mb: int = 200) -> Path:
    """A GTSRB training archive whose one PPM member inflates to `mb` MB."""
    root.mkdir(parents=True, exist_ok=True)
    path = root / "GTSRB_Final_Training_Images.zip"
    folder = "GTSRB/Final_Training/Images/00000"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(f"{folder}/GT-00000.csv", "Filename;ClassId\n00000_00000.ppm;0\n")
        with zf.open(f"{folder}/00000_00000.ppm", "w", force_zip64=True) as fh:
            fh.write(b"P6\n4 4\n255\n")
            block = bytes(MB)
            for _ in range(mb):
                fh.write(block)
    return path


def _load(kind: str, path: Path) -> None:
    from backdoorlab.attacks import ATTACKS
    from backdoorlab.attacks.blended import load_key
    from backdoorlab.data import DATASETS, load_dataset
    from backdoorlab.data.base import InputSpec
    from backdoorlab.data.mnist import read_idx

    if kind == "idx":
        read_idx(path)
    elif kind == "gtsrb":
        load_dataset(DATASETS.entry("gtsrb").config(name="gtsrb", root=str(path), check_md5=False))
    elif kind == "imagefolder":
        load_dataset(DATASETS.entry("imagefolder").config(name="imagefolder", root=str(path)))
    elif kind == "key":
        cfg = ATTACKS.validate({"name": "blended", "key": str(path)})
        load_key(cfg, InputSpec(3, (32, 32), 10, (0.5,) * 3, (0.5,) * 3))
    else:
        raise SystemExit(f"unknown kind {kind}")


def probe(kind: str, path: Path) -> dict:
    """Load `path` as `kind`; the error line and the peak RSS growth in MB."""
    import numpy as np  # noqa: F401 - everything the loaders need, imported before the baseline
    import PIL.Image  # noqa: F401
    import torch  # noqa: F401

    import backdoorlab  # noqa: F401

    def peak() -> float:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux

    before = peak()
    from backdoorlab.errors import BackdoorlabError

    error = None
    try:
        _load(kind, path)
    except BackdoorlabError as exc:
        error = str(exc)
    return {"error": error, "growth_mb": peak() - before}


if __name__ == "__main__":
    print(json.dumps(probe(sys.argv[1], Path(sys.argv[2]))))
