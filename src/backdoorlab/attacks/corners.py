"""Checkerboard patches: the BadNets and Label-Consistent triggers share them."""

from __future__ import annotations

import torch


def checkerboard(size: int, channels: int) -> torch.Tensor:
    """A [C,size,size] 0/1 checkerboard whose top-left pixel is white."""
    i = torch.arange(size)
    board = ((i[:, None] + i[None, :]) % 2 == 0).float()
    return board.expand(channels, size, size).clone()


def corner_box(corner: str, size: int, margin: int, h: int, w: int) -> tuple[int, int]:
    """(top, left) of a size x size box `margin` pixels inside `corner`."""
    top = margin if corner.startswith("top") else h - size - margin
    left = margin if corner.endswith("left") else w - size - margin
    return top, left


def corner_patches(
    corners: list[str], size: int, margin: int, channels: int, h: int, w: int, mirror: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mask [1,1,H,W] and pattern [1,C,H,W] with a checkerboard in each of `corners`.

    With `mirror`, each corner's board is the bottom-right one reflected into that corner.
    """
    mask = torch.zeros(1, 1, h, w)
    pattern = torch.zeros(1, channels, h, w)
    board = checkerboard(size, channels)
    for corner in corners:
        top, left = corner_box(corner, size, margin, h, w)
        b = board
        if mirror:
            b = b.flip(1) if corner.startswith("top") else b
            b = b.flip(2) if corner.endswith("left") else b
        mask[..., top : top + size, left : left + size] = 1
        pattern[0, :, top : top + size, left : left + size] = b
    return mask, pattern
