"""Writing run folders so that nothing is ever half-written: temp folder, then rename."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from backdoorlab.errors import ConfigError, DataError
from backdoorlab.limits import MAX_FILE_BYTES, check_size

RUN_MARKER = "result.json"  # the file that makes a folder a run folder


def check_out(out: Path, overwrite: bool) -> None:
    """Refuse (ConfigError) a run folder `out` that exists and is not empty, unless it holds an
    earlier run and `overwrite` is set."""
    for parent in out.parents:  # the folder must be creatable, known before any work
        if parent.exists():
            if not parent.is_dir():
                raise ConfigError(f"`out` {out}: {parent} is not a folder")
            break
    if not out.exists() and not out.is_symlink():
        return
    if not replaceable(out, RUN_MARKER):
        raise ConfigError(
            f"`out` {out}: exists and is not a backdoorlab run folder (no {RUN_MARKER}); "
            "refusing to write there (name a new or empty folder)"
        )
    if (out / RUN_MARKER).is_file() and not overwrite:
        raise ConfigError(f"`out` {out}: holds an earlier run; pass `overwrite=True` to replace it")


def replaceable(out: Path, marker: str) -> bool:
    """Whether `out` may be replaced: absent, an empty folder, or a folder holding `marker` (a
    file only this program writes there, so the folder is one of ours)."""
    if not out.exists() and not out.is_symlink():
        return True
    if out.is_symlink() or not out.is_dir():
        return False
    return (out / marker).is_file() or not any(out.iterdir())


@contextmanager
def staged_dir(out: Path, *, marker: str) -> Iterator[Path]:
    """Yield a temp folder beside `out`; on success it replaces `out` in one rename.

    An existing `out` is replaced only when `replaceable` (empty, or holding `marker`): a folder
    this program did not write is never deleted (ConfigError, before and after the work).
    """
    out = Path(out)

    def check() -> None:
        if not replaceable(out, marker):
            raise ConfigError(
                f"{out} exists and is not a folder backdoorlab wrote (no {marker} in it); "
                "refusing to replace it"
            )

    check()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        yield tmp
        check()
        old = None
        if out.exists():
            old = out.with_name(f".{out.name}.{os.getpid()}.old")
            os.replace(out, old)
        os.replace(tmp, out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def new_run_folder(out: Path, overwrite: bool = False) -> Iterator[Path]:
    """`check_out`, then a staged run folder: yield its temp folder, renamed to `out` at the end."""
    check_out(out, overwrite)
    with staged_dir(out, marker=RUN_MARKER) as tmp:
        yield tmp


def new_run_id(created: datetime) -> str:
    """A run id: UTC time of creation and a random suffix."""
    return f"{created:%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:8]}"


def write_text(path: str | Path, text: str) -> Path:
    """A text file written whole: temp name beside it, then one rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return path


def write_json(path: Path, obj: Any) -> Path:
    """Pretty JSON, written whole (temp name, then rename)."""
    return write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def save_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    """Tensors as safetensors (moved to the CPU, made contiguous)."""
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(path))


def load_tensors(
    path: Path, device: str | torch.device = "cpu", limit: int = MAX_FILE_BYTES
) -> dict[str, torch.Tensor]:
    """Tensors from a safetensors file (no unpickling), its size checked first; DataError when
    the file is missing, too large, truncated or not safetensors."""
    try:
        check_size(Path(path).stat().st_size, limit, str(path))
        return load_file(str(path), device=str(device))
    except (SafetensorError, OSError) as exc:
        raise DataError(f"{path}: not a readable safetensors file: {exc}") from None
