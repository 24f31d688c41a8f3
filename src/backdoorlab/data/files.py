"""Fetching and checking dataset files: checksums, downloads, archive errors."""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.request
from pathlib import Path

from backdoorlab.errors import DataError


def resolve_root(root: str | os.PathLike[str]) -> Path:
    """An absolute data folder path (relative paths are taken from the working directory)."""
    return Path(root).expanduser().resolve()


def md5sum(path: Path, chunk: int = 1 << 20) -> str:
    """The md5 hex digest of a file."""
    digest = hashlib.md5()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def check_md5(path: Path, expected: str | None, what: str) -> None:
    """Raise DataError if `path` does not have the `expected` md5 (None skips the check)."""
    if expected is None:
        return
    actual = md5sum(path)
    if actual != expected:
        raise DataError(
            f"{what}: {path} has md5 {actual}, expected {expected} (truncated or not the "
            "official file; delete it to download again)"
        )


def download(urls: list[str], dest: Path, md5: str | None, what: str) -> Path:
    """Fetch the first reachable URL to `dest` (written under a temp name, then renamed)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    errors = []
    for url in urls:
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
        os.close(fd)
        try:
            urllib.request.urlretrieve(url, tmp)  # noqa: S310 - fixed https/http URLs
            check_md5(Path(tmp), md5, what)
            os.replace(tmp, dest)
            return dest
        except (OSError, DataError) as exc:
            errors.append(f"{url}: {exc}")
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    raise DataError(f"{what}: could not download {dest.name} ({'; '.join(errors)})")


def fetch(
    root: Path, filename: str, urls: list[str], md5: str | None, allow_download: bool, what: str
) -> Path:
    """The checked local file `root/filename`, downloading it first where allowed."""
    path = root / filename
    if path.is_file():
        check_md5(path, md5, what)
        return path
    if not allow_download:
        where = f"folder {root} does not exist" if not root.exists() else f"{path} is missing"
        raise DataError(f"{what}: {where} (put the files there or set dataset.download=true)")
    return download(urls, path, md5, what)
