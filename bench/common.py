"""Shared pieces of the benchmarks: data, a trained model, interleaved timing, ratio tables.

Every benchmark times ours and a reference in the same process, alternating them `repeats`
times, and reports the ratio of medians (ours / reference), so a busy machine slows both alike.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from backdoorlab.data import DATASETS, Dataset, Splits, load_dataset
from backdoorlab.models import MODELS, Classifier, build_model
from backdoorlab.train import TrainConfig, fit

MNIST = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: torch.device) -> float:
    """Seconds one call of `fn` takes (device work included)."""
    sync(device)
    t0 = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t0


def interleaved(
    fns: dict[str, Callable[[], object]], device: torch.device, repeats: int, warmup: int = 1
) -> dict[str, float]:
    """Median seconds per call of each function, calls alternating between them."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            times[k].append(timed(fn, device))
    return {k: statistics.median(v) for k, v in times.items()}


def mnist_or_digits(train_size: int, test_size: int, device: torch.device) -> tuple[Splits, str]:
    """Real MNIST from ../shared/data/mnist where present (else the embedded digits)."""
    if (MNIST / "t10k-images-idx3-ubyte.gz").is_file():
        cfg = DATASETS.entry("mnist").config(
            name="mnist", root=str(MNIST), train_size=train_size, test_size=test_size
        )
        name = "MNIST"
    else:
        cfg = DATASETS.entry("digits").config(name="digits")
        name = "digits (MNIST not found)"
    return load_dataset(cfg, seed=0).to(device), name


def small_cnn(data: Dataset, device: torch.device, width: int = 32) -> Classifier:
    torch.manual_seed(0)
    section = MODELS.validate({"name": "small_cnn", "width": width})
    return build_model(section, data.spec).to(device)


def trained_cnn(data: Dataset, device: torch.device, epochs: int = 2) -> Classifier:
    model = small_cnn(data, device)
    fit(model, data, TrainConfig(epochs=epochs, batch_size=128, lr=0.05), progress=False)
    return model.eval()


def synthetic_images(n: int, channels: int, size: int, device: torch.device) -> Dataset:
    """n random uint8 images (CIFAR-shaped by default) with 10 balanced labels."""
    cfg = DATASETS.entry("synthetic").config(
        name="synthetic", num_classes=10, channels=channels, size=size, train_size=n, test_size=10
    )
    return load_dataset(cfg, seed=0).train.to(device)


@dataclass
class Row:
    """One line of a benchmark table."""

    what: str
    ours: float
    reference: float
    unit: str
    ratio: float
    target: str

    def cells(self) -> list[str]:
        return [
            self.what,
            f"{self.ours:.4g} {self.unit}",
            f"{self.reference:.4g} {self.unit}",
            f"{self.ratio:.3f}",
            self.target,
        ]


def print_rows(title: str, rows: list[Row]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for col in ("measure", "ours", "reference", "ratio", "target"):
        table.add_column(col, justify="left" if col in ("measure", "target") else "right")
    for r in rows:
        table.add_row(*r.cells())
    Console().print(table)


def machine() -> str:
    import os
    import platform

    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads)"
    )
