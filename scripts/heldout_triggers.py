"""The user triggers of the held-out detection zoo (configs/results/detection-heldout.yaml):
28x28 grey PNGs of shapes no registered attack draws, stamped by the `pattern` attack.

    .venv/bin/python -m scripts.heldout_triggers [--out configs/results/triggers]

- pixels.png: 12 white pixels scattered over the image (seed 0), over the digit as well;
- cross.png: a 7x7 white X left of the centre;
- stripes.png: white rows every 4th row, for a faint (alpha < 1) stripe overlay.

Writes the three files (the same bytes every time) and nothing else.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

SIZE = 28


def pixels(seed: int = 0, count: int = 12) -> np.ndarray:
    """`count` white pixels at distinct random positions."""
    img = np.zeros((SIZE, SIZE), np.uint8)
    where = np.random.default_rng(seed).choice(SIZE * SIZE, size=count, replace=False)
    img.flat[where] = 255
    return img


def cross(top: int = 10, left: int = 1, side: int = 7) -> np.ndarray:
    """A white X of `side` pixels whose top-left corner is at (top, left)."""
    img = np.zeros((SIZE, SIZE), np.uint8)
    for i in range(side):
        img[top + i, left + i] = img[top + i, left + side - 1 - i] = 255
    return img


def stripes(period: int = 4) -> np.ndarray:
    """White rows every `period` rows."""
    img = np.zeros((SIZE, SIZE), np.uint8)
    img[::period] = 255
    return img


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("configs/results/triggers"))
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, img in {"pixels": pixels(), "cross": cross(), "stripes": stripes()}.items():
        Image.fromarray(img, mode="L").save(args.out / f"{name}.png", optimize=False)
        print(args.out / f"{name}.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
