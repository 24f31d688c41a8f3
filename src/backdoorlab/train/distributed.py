"""Data-parallel training across the processes `torchrun` starts (one per GPU).

Every rank runs the whole experiment on the same seed (so data, poisoning and control flow agree);
`fit` gives each rank its share of every global batch and averages gradients; only rank 0 shows
progress and writes files. A run started without `torchrun` is a world of one and nothing changes.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class World:
    """This process's place among the ranks of a run."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.size > 1


def world() -> World:
    """The world in force: the initialised process group, or a world of one."""
    if dist.is_available() and dist.is_initialized():
        return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))
    return World()


def launched() -> bool:
    """Whether `torchrun` started this process as one of several."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


@contextmanager
def distributed(cuda: bool) -> Iterator[World]:
    """Join the process group `torchrun` describes (NCCL on CUDA, gloo on CPU) for the enclosed
    code, and leave it afterwards; a no-op outside `torchrun` or inside a group already joined."""
    if not launched() or not dist.is_available() or dist.is_initialized():
        yield world()
        return
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if cuda:
        torch.cuda.set_device(local_rank)
    dist.init_process_group("nccl" if cuda else "gloo")
    try:
        yield world()
        dist.barrier()  # no rank tears the group down while a peer still has collectives to run
    finally:
        dist.destroy_process_group()


def average_gradients(params: Iterable[nn.Parameter]) -> None:
    """Average the gradients of `params` over the ranks in one all-reduce (for steps that do
    not run the model through DDP's forward); a no-op in a world of one."""
    w = world()
    if not w.active:
        return
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= w.size
    for g, avg in zip(grads, flat.split([g.numel() for g in grads]), strict=True):
        g.copy_(avg.view(g.shape))


def _broadcast(tensors: Iterable[torch.Tensor]) -> None:
    for t in tensors:
        dense = t.data.contiguous()  # channels_last weights go over the wire in NCHW
        dist.broadcast(dense, 0)
        if dense.data_ptr() != t.data.data_ptr():
            t.data.copy_(dense)


def sync_buffers(model: nn.Module) -> None:
    """Give every rank rank 0's buffers (BatchNorm statistics), which local forwards change."""
    if world().active:
        _broadcast(model.buffers())


def sync_model(model: nn.Module) -> None:
    """Give every rank rank 0's parameters and buffers."""
    if world().active:
        _broadcast([*model.parameters(), *model.buffers()])


def _move(value: Any, device: torch.device | str) -> Any:
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, (list, tuple)):
        return type(value)(_move(v, device) for v in value)
    if isinstance(value, dict):
        return {k: _move(v, device) for k, v in value.items()}
    return value


def agree(value: Any, device: torch.device | None = None) -> Any:
    """Rank 0's `value` on every rank: for decisions that steer which collective calls follow
    (stop training, which classes to unlearn), which must not depend on a rank's float noise.
    Tensors in it travel on the CPU and arrive on `device` (this rank's own GPU, say)."""
    if not world().active:
        return value
    box = [_move(value, "cpu")]
    dist.broadcast_object_list(box, 0)
    return box[0] if device is None else _move(box[0], device)


def all_sum(values: torch.Tensor) -> torch.Tensor:
    """`values` summed over the ranks (in place; returned)."""
    if world().active:
        dist.all_reduce(values)
    return values
