"""Spatial transformation by a per-pixel flow field (bilinear, border-clamped), and the flow
field of an affine transformation."""

from __future__ import annotations

import torch


def warp(x: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Sample x [B,C,H,W] at the identity grid plus `flow` [B,H,W,2] (dx, dy).

    The flow is in normalised coordinates ([-1, 1] spans the image, as with grid_sample and
    align_corners=True, so 1 unit = (size-1)/2 pixels). Sampling is bilinear with border
    clamping; the base positions are exact integers, so a zero flow returns x exactly.
    """
    b, c, h, w = x.shape
    cols = torch.arange(w, device=x.device, dtype=x.dtype).view(1, 1, w)
    rows = torch.arange(h, device=x.device, dtype=x.dtype).view(1, h, 1)
    px = (cols + flow[..., 0] * ((w - 1) / 2)).clamp(0, w - 1)
    py = (rows + flow[..., 1] * ((h - 1) / 2)).clamp(0, h - 1)
    x0, y0 = px.detach().floor(), py.detach().floor()
    wx, wy = (px - x0)[:, None], (py - y0)[:, None]
    x0, y0 = x0.long(), y0.long()
    x1, y1 = (x0 + 1).clamp(max=w - 1), (y0 + 1).clamp(max=h - 1)
    flat = x.flatten(2)

    def gather(yy: torch.Tensor, xx: torch.Tensor) -> torch.Tensor:
        idx = (yy * w + xx).flatten(1)[:, None, :].expand(b, c, h * w)
        return flat.gather(2, idx).view(b, c, h, w)

    top = gather(y0, x0) * (1 - wx) + gather(y0, x1) * wx
    bottom = gather(y1, x0) * (1 - wx) + gather(y1, x1) * wx
    return top * (1 - wy) + bottom * wy


def affine_flow(theta: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """The flow [B,H,W,2] of the affine maps identity + theta [B,2,3] in normalised coordinates:
    pixel (u, v) samples (u, v) + theta @ (u, v, 1), so warp(x, affine_flow(0, ...)) is x."""
    u = torch.linspace(-1, 1, w, device=theta.device, dtype=theta.dtype).view(1, w).expand(h, w)
    v = torch.linspace(-1, 1, h, device=theta.device, dtype=theta.dtype).view(h, 1).expand(h, w)
    coords = torch.stack([u, v, torch.ones_like(u)], dim=-1)  # [H,W,3]
    return torch.einsum("hwk,bjk->bhwj", coords, theta)
