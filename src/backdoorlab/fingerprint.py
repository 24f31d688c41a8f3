"""The one hash of the project: config digests, sweep-cell keys, stage-cache keys, reference and
auxiliary-model keys, record fingerprints and folder-name suffixes all come from `fingerprint`."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np
import torch


def _encode(part: Any, compact: bool) -> bytes:
    if isinstance(part, str):
        return part.encode()
    if isinstance(part, bytes):
        return part
    if isinstance(part, torch.Tensor):
        return part.detach().cpu().numpy().tobytes()  # C order whatever the strides
    if isinstance(part, np.ndarray):
        return part.tobytes()
    separators = (",", ":") if compact else None
    return json.dumps(part, sort_keys=True, separators=separators).encode()


def fingerprint(*parts: Any, compact: bool = False, terminator: bytes = b"") -> str:
    """sha256 (hex) of `parts` in order: text as UTF-8, bytes as given, tensors and arrays by their
    contents, anything else as JSON with sorted keys; each part followed by `terminator`.

    `compact` drops the spaces of the JSON (the config digest's and the stage cache's form) and
    `terminator` separates parts (the references'); both are kept so every existing key holds.
    """
    h = hashlib.sha256()
    for part in parts:
        h.update(_encode(part, compact))
        h.update(terminator)
    return h.hexdigest()
