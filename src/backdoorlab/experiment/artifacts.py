"""Writing run folders so that nothing is ever half-written: temp folder, then rename."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file


@contextmanager
def staged_dir(out: Path) -> Iterator[Path]:
    """Yield a temp folder beside `out`; on success it replaces `out` in one rename."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        yield tmp
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


def write_text(path: str | Path, text: str) -> Path:
    """A text file written whole: temp name beside it, then one rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return path


def write_json(path: Path, obj: Any) -> None:
    """Pretty JSON, written whole."""
    path.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")


def save_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    """Tensors as safetensors (moved to the CPU, made contiguous)."""
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(path))


def load_tensors(path: Path, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """Tensors from a safetensors file (no unpickling)."""
    return load_file(str(path), device=str(device))
