"""The one hash: every key the project wrote before it existed comes out the same."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import torch

from backdoorlab.detectors.references import digest
from backdoorlab.fingerprint import fingerprint

CONFIG = {"seed": 3, "attack": {"name": "badnets", "rate": 0.05}, "model": {"width": [1, 2]}}


def test_json_forms_match_the_recipes_they_replace():
    # the sweep cell key and a record's config_hash: JSON with sorted keys, default separators
    spaced = hashlib.sha256(json.dumps(CONFIG, sort_keys=True).encode()).hexdigest()
    # the config digest and the stage-cache key: compact separators
    compact = json.dumps(CONFIG, sort_keys=True, separators=(",", ":"))
    assert fingerprint(CONFIG) == spaced
    assert fingerprint(CONFIG, compact=True) == hashlib.sha256(compact.encode()).hexdigest()
    assert fingerprint(CONFIG) != fingerprint(CONFIG, compact=True)


def test_parts_are_hashed_in_order_by_content():
    x = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    strided = x[:, ::2]  # not contiguous: hashed as its C-order contents
    assert fingerprint(strided) == fingerprint(strided.contiguous()) == fingerprint(strided.numpy())
    old = hashlib.sha256(b"LCAux")  # the auxiliary-model key's recipe
    old.update(json.dumps(CONFIG, sort_keys=True).encode())
    old.update(x.numpy().tobytes())
    assert fingerprint("LCAux", CONFIG, x) == old.hexdigest()
    assert fingerprint("a", "b") != fingerprint("b", "a")


def test_references_terminate_each_part():
    old = hashlib.sha256()
    for part in (b"arch", "data", np.arange(3).tobytes()):
        old.update(part.encode() if isinstance(part, str) else part)
        old.update(b"\0")
    assert digest(b"arch", "data", torch.from_numpy(np.arange(3))) == old.hexdigest()
    # the terminator keeps ("ab", "c") and ("a", "bc") apart
    assert digest("ab", "c") != digest("a", "bc")
