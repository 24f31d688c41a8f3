"""Hostile files in the real formats, and a probe that loads one in a fresh process and reports
its error line and peak memory growth: `python -m tests.security.hostile KIND PATH`, or
`--serve` for many probes, one forked process each."""

from __future__ import annotations

import gzip
import json
import os
import resource
import struct
import sys
import zipfile
import zlib
from pathlib import Path

MB = 1 << 20


def idx_gzip_bomb(path: Path, claimed: tuple[int, ...] = (10, 28, 28), mb: int = 1200) -> Path:
    """An IDX .gz whose header promises a few images and whose stream inflates to `mb` MB, past
    both the 1 GiB file cap and the tests' 300 MB memory bound. Gzip members concatenate, so
    one compressed megabyte of zeros is written `mb` times (about 1 MB on disk, instantly)."""
    header = bytes([0, 0, 0x08, len(claimed)]) + struct.pack(f">{len(claimed)}I", *claimed)
    zeros = gzip.compress(bytes(MB), compresslevel=9)
    with open(path, "wb") as fh:
        fh.write(gzip.compress(header))
        for _ in range(mb):
            fh.write(zeros)
    return path


def idx_lying_header(path: Path, claimed: tuple[int, ...] = (1_000_000, 28, 28)) -> Path:
    """An IDX .gz whose header promises 784 MB (under the file cap) and holds 700 bytes."""
    header = bytes([0, 0, 0x08, len(claimed)]) + struct.pack(f">{len(claimed)}I", *claimed)
    path.write_bytes(gzip.compress(header + bytes(700)))
    return path


def npz_lying_header(path: Path, shape: tuple[int, ...] = (10**12, 1, 28, 28)) -> Path:
    """An .npz whose x.npy member is 700 bytes of data behind a header declaring `shape`
    (784 TB of uint8): numpy allocates the header's shape before it reads."""
    import io

    import numpy as np

    head = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        head, {"descr": "|u1", "fortran_order": False, "shape": shape}
    )
    labels = io.BytesIO()
    np.save(labels, np.zeros(4, np.int64))
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("x.npy", head.getvalue() + bytes(700))
        zf.writestr("y.npy", labels.getvalue())
    return path


def safetensors_lying_header(path: Path, shape: tuple[int, ...] = (10**12, 1, 28, 28)) -> Path:
    """A .safetensors file whose x tensor declares `shape` over 700 bytes of data."""
    header = {
        "x": {"dtype": "U8", "shape": list(shape), "data_offsets": [0, 700]},
        "y": {"dtype": "I64", "shape": [4], "data_offsets": [700, 732]},
    }
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + bytes(732))
    return path


def json_past_the_cap(run_dir: Path, mb: int = 65) -> Path:
    """A run folder whose result.json is `mb` MB of valid JSON (past the 64 MB cap)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / "result.json", "w") as fh:
        fh.write('{"config": {}, "pad": "')
        block = "x" * MB
        for _ in range(mb):
            fh.write(block)
        fh.write('"}')
    return run_dir


def cifar_lying_member(root: Path) -> Path:
    """A CIFAR-10 archive whose data_batch_1 header says 4 GiB and whose data stops at once."""
    import tarfile

    root.mkdir(parents=True, exist_ok=True)
    info = tarfile.TarInfo("cifar-10-batches-py/data_batch_1")
    info.size = 4 << 30
    block = info.tobuf(format=tarfile.GNU_FORMAT) + bytes(512)  # then the archive just ends
    path = root / "cifar-10-python.tar.gz"
    path.write_bytes(gzip.compress(block))
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


def gtsrb_zip_bomb(root: Path, mb: int = 1200) -> Path:
    """A GTSRB training archive whose one PPM member inflates to `mb` MB."""
    root.mkdir(parents=True, exist_ok=True)
    path = root / "GTSRB_Final_Training_Images.zip"
    folder = "GTSRB/Final_Training/Images/00000"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
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
    elif kind == "padding":  # a config whose augmentation asks for a 5.7 PB padded copy
        from backdoorlab.experiment import run

        run(path, overrides=["train.crop_padding=1000000", "train.epochs=1"], save=False,
            progress=False)  # fmt: skip
    elif kind == "arrays":
        from backdoorlab.data.user import load_user_data

        load_user_data(path)
    elif kind == "run":
        from backdoorlab.records.record import read_run

        read_run(path)
    elif kind == "cifar":
        cfg = DATASETS.entry("cifar10").config(name="cifar10", root=str(path), md5=None)
        load_dataset(cfg)
    elif kind == "gtsrb":
        load_dataset(DATASETS.entry("gtsrb").config(name="gtsrb", root=str(path), check_md5=False))
    elif kind == "imagefolder":
        load_dataset(DATASETS.entry("imagefolder").config(name="imagefolder", root=str(path)))
    elif kind == "key":
        cfg = ATTACKS.validate({"name": "blended", "key": str(path)})
        load_key(cfg, InputSpec(3, (32, 32), 10, (0.5,) * 3, (0.5,) * 3))
    else:
        raise SystemExit(f"unknown kind {kind}")


def _preload() -> None:
    """Everything the loaders need, imported before any baseline is taken."""
    import numpy as np  # noqa: F401
    import PIL.Image  # noqa: F401
    import torch  # noqa: F401

    import backdoorlab  # noqa: F401
    import backdoorlab.errors  # noqa: F401


def probe(kind: str, path: Path) -> dict:
    """Load `path` as `kind`; the error line and the peak RSS growth in MB."""
    _preload()

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


def serve() -> None:
    """Answer probes read from stdin ("KIND\tPATH" per line), each in a process forked from this
    one after the imports: as fresh as a new interpreter for the peak-RSS baseline (the child's
    peak starts at the parent's), without paying the imports once per probe."""
    _preload()  # before any fork
    for line in sys.stdin:
        kind, path = line.rstrip("\n").split("\t")
        pid = os.fork()
        if pid == 0:
            try:
                answer = probe(kind, Path(path))
            except BaseException as exc:  # a crash is an answer too: the test shows it
                answer = {"crash": f"{type(exc).__name__}: {exc}"}
            sys.stdout.write(json.dumps(answer) + "\n")
            sys.stdout.flush()
            os._exit(0)
        os.waitpid(pid, 0)


if __name__ == "__main__":
    if sys.argv[1:] == ["--serve"]:
        serve()
    else:
        print(json.dumps(probe(sys.argv[1], Path(sys.argv[2]))))
