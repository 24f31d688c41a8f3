"""Names that become paths: one pattern for all of them, and writes checked to stay inside."""

from __future__ import annotations

import re
from pathlib import Path

from backdoorlab.errors import ConfigError
from backdoorlab.fingerprint import fingerprint

# a run, sweep, report or cell name: no separators, no leading dot, no "..", at most 128 characters
NAME_PATTERN = r"^[A-Za-z0-9_=+-][A-Za-z0-9_.=+-]{0,127}$"
_NAME = re.compile(NAME_PATTERN)
_UNSAFE = re.compile(r"[^A-Za-z0-9_.=+-]+")


def check_name(name: str, what: str) -> str:
    """`name` unchanged if it can be a file name inside a folder; else a ConfigError naming it."""
    if not isinstance(name, str) or not _NAME.match(name) or ".." in name:
        raise ConfigError(
            f"{what}: {name!r} cannot be a file name (letters, digits and _ . = + - only, "
            "not starting with '.', no '..', at most 128 characters)"
        )
    return name


def slug(text: str, key: str | None = None, width: int = 80) -> str:
    """A readable name from `text` that passes check_name; with `key`, unique by a short hash."""
    readable = _UNSAFE.sub("_", text).strip(".")
    readable = re.sub(r"\.{2,}", "_", readable)[:width] or "_"
    if key is not None:
        readable = f"{readable}-{fingerprint(key)[:10]}"
    if not _NAME.match(readable):  # e.g. it began with a character the pattern refuses first
        readable = "_" + readable[:127]
    return readable


def inside(root: str | Path, *parts: str) -> Path:
    """root/parts..., resolved and checked to lie inside resolved `root` (else ConfigError)."""
    base = Path(root).resolve()
    path = base.joinpath(*parts).resolve()
    if path != base and base not in path.parents:
        raise ConfigError(f"{'/'.join(parts)!r} would be written outside {base}")
    return path
