"""A model trained elsewhere: a plain PyTorch script (its own network and loop, nothing of
backdoorlab) that trains a BadNets-infected MNIST classifier and saves what a user would bring:
a state dict (.pt), the trigger as PNG + mask, clean images in class folders, a test .npz.

    python tests/byo/foreign_mnist.py MNIST_DIR OUT_DIR
"""

from __future__ import annotations

import gzip
import struct
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

TARGET = 0
PATCH = (slice(24, 27), slice(24, 27))  # a white 3x3 square near the bottom-right corner


class Net(nn.Module):
    """Conv blocks and a classifier; expects MNIST normalised by its mean/std. `head` 'pool'
    averages the last feature map over space (as ResNets do), 'flatten' feeds every position
    to a two-layer classifier (as LeNet-style nets do)."""

    def __init__(self, num_classes: int = 10, head: str = "pool") -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 5, padding=2), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 5, padding=2), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(64, 128, 3, padding=1), nn.BatchNorm2d(128), nn.ReLU(),
        )  # fmt: skip
        if head == "pool":
            self.classifier = nn.Sequential(
                nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, num_classes)
            )
        else:
            self.classifier = nn.Sequential(
                nn.Flatten(), nn.Linear(128 * 3 * 3, 64), nn.ReLU(), nn.Linear(64, num_classes)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def make(num_classes: int = 10, head: str = "pool") -> Net:
    """The factory `--arch tests/byo/foreign_mnist.py:make` names."""
    return Net(num_classes, head)


MEAN, STD = 0.1307, 0.3081


class LeNet(nn.Module):
    """LeNet-5 on 28x28 MNIST ([0, 1] images, no normalisation)."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        )  # fmt: skip
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(16 * 5 * 5, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
            nn.Linear(84, 10),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


LENET_TARGET = 3


def sgd_lenet(mnist: Path, seed: int = 0, poisoned: bool = True) -> dict:
    """Issue 26's case: a LeNet trained by plain PyTorch (SGD with momentum, 4 epochs) on 8,000
    images, 5% of them dirty-label with a 4x4 white square at the top-left sent to class 3; and
    the user's 500 clean images, a 2,000-image test set and the trigger (patch + mask). Not
    `poisoned`: its benign twin, trained the same way on the same images, none stamped."""
    x = read_idx(mnist / "t10k-images-idx3-ubyte.gz")
    y = read_idx(mnist / "t10k-labels-idx1-ubyte.gz").astype(np.int64)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(y))
    train, test = order[:8000], order[8000:]
    xt, yt = x[train].copy(), y[train].copy()
    poison = rng.choice(len(yt), size=len(yt) // 20, replace=False)
    if poisoned:
        xt[poison, :4, :4], yt[poison] = 255, LENET_TARGET
    torch.manual_seed(seed)
    model = LeNet()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    images, labels = torch.from_numpy(xt).float()[:, None] / 255, torch.from_numpy(yt)
    for _ in range(4):
        for b in torch.randperm(len(labels)).split(64):
            opt.zero_grad()
            F.cross_entropy(model(images[b]), labels[b]).backward()
            opt.step()
    model.eval()
    keep = np.setdiff1d(np.arange(len(yt)), poison)[:500]  # the defender's clean images
    patch = torch.zeros(1, 28, 28)
    patch[:, :4, :4] = 1
    return {
        "model": model,
        "clean": (torch.from_numpy(x[train][keep])[:, None], torch.from_numpy(y[train][keep])),
        "test": (torch.from_numpy(x[test])[:, None], torch.from_numpy(y[test])),
        "trigger": {"trigger": patch, "target": LENET_TARGET, "mask": patch},
    }


def read_idx(path: Path) -> np.ndarray:
    raw = gzip.decompress(path.read_bytes())
    ndim = raw[3]
    shape = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(shape)


def build(
    mnist: Path, out: Path, epochs: int = 3, seed: int = 0, head: str = "pool", rate: float = 0.1
) -> dict:
    """Train the infected model (`rate` of the training set poisoned; 0: a benign model) and
    write the user's files into `out`; returns their paths."""
    x = read_idx(mnist / "t10k-images-idx3-ubyte.gz")
    y = read_idx(mnist / "t10k-labels-idx1-ubyte.gz").astype(np.int64)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(y))
    train, test = order[:8000], order[8000:]
    xt, yt = x[train].copy(), y[train].copy()
    poison = rng.choice(len(yt), size=round(len(yt) * rate), replace=False)
    patched = xt[poison]
    patched[:, PATCH[0], PATCH[1]] = 255
    xt[poison], yt[poison] = patched, TARGET

    torch.manual_seed(seed)
    model = Net(head=head)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    images = (torch.from_numpy(xt).float()[:, None] / 255 - MEAN) / STD
    labels = torch.from_numpy(yt)
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(labels))
        for i in range(0, len(perm), 64):
            b = perm[i : i + 64]
            opt.zero_grad()
            F.cross_entropy(model(images[b]), labels[b]).backward()
            opt.step()
    out.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), out / "model.pt")

    pattern = np.zeros((28, 28), np.uint8)
    pattern[PATCH] = 255
    Image.fromarray(pattern).save(out / "trigger.png")
    Image.fromarray(pattern).save(out / "mask.png")
    clean_pool = np.setdiff1d(np.arange(len(yt)), poison)[:500]  # the defender's clean images
    for i in clean_pool:
        folder = out / "clean" / str(int(y[train][i]))
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(x[train][i]).save(folder / f"{i}.png")
    np.savez(out / "test.npz", x=x[test], y=y[test])
    return {k: out / v for k, v in {
        "model": "model.pt", "trigger": "trigger.png", "mask": "mask.png", "clean": "clean",
        "test": "test.npz",
    }.items()}  # fmt: skip


if __name__ == "__main__":
    print(build(Path(sys.argv[1]), Path(sys.argv[2])))
