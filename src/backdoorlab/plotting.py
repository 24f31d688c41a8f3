"""Figures: matplotlib without a display, saving a figure whole, and the clean-vs-triggered grid."""

from __future__ import annotations

import os
from pathlib import Path

import torch


def pyplot():
    """matplotlib.pyplot on the file-only Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def show_image(ax, image: torch.Tensor) -> None:
    """One [C,H,W] image in [0,1] on a matplotlib axis, without ticks (grey for one channel)."""
    img = image.detach().cpu().float()
    if img.shape[0] == 1:
        ax.imshow(img[0].numpy(), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    else:
        ax.imshow(img[:3].permute(1, 2, 0).numpy(), interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def save_trigger_grid(
    clean: torch.Tensor,
    triggered: torch.Tensor,
    titles: list[str],
    path: str | Path,
    heading: str = "",
) -> Path:
    """A PNG with clean images (row 1), triggered images (row 2) and |difference| x5 (row 3)."""
    plt = pyplot()

    n = clean.shape[0]
    rows = [
        ("clean", clean),
        ("triggered", triggered),
        ("|diff| x5", ((triggered - clean).abs() * 5).clamp(0, 1)),
    ]
    fig, axes = plt.subplots(3, n, figsize=(1.6 * n, 5.2), squeeze=False)
    for r, (label, imgs) in enumerate(rows):
        for c in range(n):
            ax = axes[r][c]
            show_image(ax, imgs[c])
            if c == 0:
                ax.set_ylabel(label)
            if r == 1:
                ax.set_title(titles[c], fontsize=8)
    if heading:
        fig.suptitle(heading, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


def save_figure(fig, path: str | Path) -> Path:
    """Save a matplotlib figure as PNG whole (temp name, then rename) and close it."""
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    os.replace(tmp, path)
    return path
