"""Shared fixtures: the real MNIST folder (skip, or fail under CI, when absent) and tiny configs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
MNIST_DIR = Path(os.environ.get("BACKDOORLAB_MNIST", REPO.parent / "shared" / "data" / "mnist"))


@pytest.fixture(autouse=True, scope="session")
def _session_threads():
    """One thread before any module fixture trains (pytest-xdist runs one worker per core): a
    fixture set up first in its worker otherwise trained at torch's default of every core."""
    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _threads(_session_threads):
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(1)  # a test that changed it leaves the next module fixture one thread


@pytest.fixture(autouse=True, scope="session")
def _reference_cache(tmp_path_factory):
    """Scans keep the references they train in a folder of this session, never the user's
    ~/.cache (one per worker: a second scan of the same architecture and data reuses them)."""
    saved = os.environ.get("BACKDOORLAB_CACHE")
    os.environ["BACKDOORLAB_CACHE"] = str(tmp_path_factory.mktemp("reference-cache"))
    yield
    if saved is None:
        os.environ.pop("BACKDOORLAB_CACHE", None)
    else:
        os.environ["BACKDOORLAB_CACHE"] = saved


@pytest.fixture(autouse=True)
def _registries():
    """Components a test registers from its own code are gone after it: the suite runs in a
    random order, and a later test counting the registered attacks must not see them."""
    from backdoorlab.attacks import ATTACKS
    from backdoorlab.data import DATASETS
    from backdoorlab.defenses import DEFENSES
    from backdoorlab.detectors import DETECTORS
    from backdoorlab.models import MODELS

    registries = (ATTACKS, DATASETS, DEFENSES, DETECTORS, MODELS)
    saved = [dict(r._entries) for r in registries]
    yield
    for r, entries in zip(registries, saved, strict=True):
        r._entries.clear()
        r._entries.update(entries)


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """The real MNIST test files; skipped where absent, a failure under CI=true."""
    if not (MNIST_DIR / "t10k-images-idx3-ubyte.gz").is_file():
        reason = f"real MNIST files not found at {MNIST_DIR} (set BACKDOORLAB_MNIST to use others)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason + " - required under CI")
        pytest.skip(reason)
    return MNIST_DIR


@pytest.fixture
def tiny_config() -> dict:
    """A seconds-long experiment on synthetic data."""
    return {
        "name": "tiny",
        "seed": 0,
        "device": "cpu",
        "dataset": {
            "name": "synthetic",
            "num_classes": 4,
            "channels": 3,
            "size": 12,
            "train_size": 256,
            "test_size": 128,
        },
        "model": {"name": "small_cnn", "width": 8, "stages": 2},
        "attack": {"name": "badnets", "target": 0, "rate": 0.1, "patch_size": 3},
        "train": {"epochs": 2, "batch_size": 64, "lr": 0.05, "eval_every": 1},
    }


@pytest.fixture
def digits_config() -> dict:
    """A real-data experiment of about a second: BadNets on the embedded digits, small CNN.
    The efficacy tests measure attacks and defenses against it."""
    return {
        "name": "digits-efficacy",
        "seed": 0,
        "device": "cpu",
        "dataset": {"name": "digits"},
        "model": {"name": "small_cnn", "width": 16, "stages": 2},
        "attack": {
            "name": "badnets",
            "target": 0,
            "rate": 0.1,
            "rate_of": "dataset",
            "label_mode": "dirty",
            "patch_size": 2,
        },  # fmt: skip
        "train": {
            "epochs": 10,
            "batch_size": 64,
            "lr": 0.05,
            "schedule": "cosine",
            "crop_padding": 0,
            "flip": False,
            "eval_every": 0,
        },  # fmt: skip
    }


@pytest.fixture(scope="session")
def synthetic():
    """Factory of small synthetic train/test splits: synthetic(size=12, train_size=200)."""
    from backdoorlab.data import DATASETS, load_dataset

    def make(num_classes=4, size=12, train_size=200, test_size=50, seed=0):
        cfg = DATASETS.entry("synthetic").config(
            name="synthetic",
            num_classes=num_classes,
            size=size,
            train_size=train_size,
            test_size=test_size,
        )
        return load_dataset(cfg, seed)

    return make
