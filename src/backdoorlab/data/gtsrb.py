"""GTSRB from the official archives, every image resized to 32x32."""

from __future__ import annotations

import csv
import io
import zipfile
import zlib
from pathlib import PurePosixPath

import torch
from pydantic import Field

from backdoorlab.data.base import DatasetConfig, Splits, register_dataset, subsample
from backdoorlab.data.files import fetch, resolve_root
from backdoorlab.data.images import decode_ppm, resize
from backdoorlab.errors import DataError
from backdoorlab.limits import MAX_IMAGE_FILE_BYTES, MAX_JSON_BYTES, check_size, read_stream
from backdoorlab.seeds import HELD_OUT_TEST, stream

BASE_URL = "https://sid.erda.dk/public/archives/daaeac0d7ce1152aea9b61d9f1e19370/"
ARCHIVES = {
    "train": ("GTSRB_Final_Training_Images.zip", "f33fd80ac59bff73c82d25ab499e03a3"),
    "test": ("GTSRB_Final_Test_Images.zip", "c7e4e6327067d32654124b0fe9e82185"),
    "test_gt": ("GTSRB_Final_Test_GT.zip", "fe31e9c9270bbcd7b84b7f21a9d9d9e5"),
}
NUM_CLASSES = 43


class GtsrbConfig(DatasetConfig):
    root: str = Field("data/gtsrb", description="folder holding the three official zip archives")
    download: bool = Field(False, description="fetch missing archives")
    check_md5: bool = Field(True, description="verify the archives against the official md5s")
    size: int = Field(32, ge=8, description="side of the resized square images")
    train_size: int | None = Field(None, ge=1, description="training images (default: all)")
    test_size: int | None = Field(None, ge=1, description="test images (default: all)")


def _open(cfg: GtsrbConfig, key: str) -> zipfile.ZipFile:
    name, md5 = ARCHIVES[key]
    root = resolve_root(cfg.root)
    path = fetch(
        root, name, [BASE_URL + name], md5 if cfg.check_md5 else None, cfg.download, "gtsrb"
    )
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise DataError(f"gtsrb: {path} is not a readable zip archive: {exc}") from None


def _member(zf: zipfile.ZipFile, member: str, limit: int) -> bytes:
    """One archive member, its size checked from the directory and its decompression capped."""
    try:
        check_size(zf.getinfo(member).file_size, limit, f"gtsrb: {member}")
        with zf.open(member) as fh:
            return read_stream(fh, limit, f"gtsrb: {member}")
    except (KeyError, zipfile.BadZipFile, OSError, zlib.error, EOFError) as exc:
        raise DataError(f"gtsrb: cannot read {member}: {exc}") from None


def _read_csv(zf: zipfile.ZipFile, member: str) -> list[dict[str, str]]:
    try:
        text = _member(zf, member, MAX_JSON_BYTES).decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"gtsrb: {member} is not UTF-8 text: {exc}") from None
    return list(csv.DictReader(io.StringIO(text), delimiter=";"))


def _images(zf: zipfile.ZipFile, rows: list[tuple[str, int]], size: int):
    xs = []
    for member, _ in rows:
        raw = _member(zf, member, MAX_IMAGE_FILE_BYTES)
        xs.append(resize(decode_ppm(raw, f"gtsrb {member}"), (size, size)))
    if not xs:
        raise DataError("gtsrb: archive holds no images")
    return torch.stack(xs), torch.tensor([c for _, c in rows], dtype=torch.int64)


@register_dataset("gtsrb", config=GtsrbConfig)
def load_gtsrb(cfg: GtsrbConfig, seed: int = 0) -> Splits:
    """German Traffic Sign Recognition Benchmark (43 classes), resized to `size` x `size`."""
    with _open(cfg, "train") as zf:
        rows = []
        for member in zf.namelist():
            p = PurePosixPath(member)
            if p.suffix == ".csv" and p.name.startswith("GT-"):
                folder = str(p.parent)
                rows += [
                    (f"{folder}/{r['Filename']}", int(r["ClassId"])) for r in _read_csv(zf, member)
                ]
        train = _images(zf, sorted(rows), cfg.size)
    with _open(cfg, "test_gt") as zf:
        gt_name = next((n for n in zf.namelist() if n.endswith(".csv")), None)
        if gt_name is None:
            raise DataError("gtsrb: test ground-truth archive holds no csv")
        labels = {r["Filename"]: int(r["ClassId"]) for r in _read_csv(zf, gt_name)}
    with _open(cfg, "test") as zf:
        ppms = sorted(n for n in zf.namelist() if n.endswith(".ppm"))
        missing = [n for n in ppms if PurePosixPath(n).name not in labels]
        if missing:
            raise DataError(f"gtsrb: no ground-truth label for {missing[0]}")
        test = _images(zf, [(n, labels[PurePosixPath(n).name]) for n in ppms], cfg.size)
    train = subsample(*train, cfg.train_size, seed, "gtsrb train")
    test = subsample(*test, cfg.test_size, stream(seed, HELD_OUT_TEST), "gtsrb test")
    return Splits.of("gtsrb", train, test, [str(i) for i in range(NUM_CLASSES)])
