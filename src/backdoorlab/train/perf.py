"""How the work runs (not what it computes): memory layout, bf16 autocast, torch.compile.

The runner passes a config's `performance` section to `fit` and PGD (and to the defenses, which
pass it on), and sets the process-wide torch switches (threads, deterministic algorithms) for
the duration of a run. They change speed and the last bits of results, never the experiment, so
they are left out of the hashes that identify sweep cells and cached stages.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn


class Performance(BaseModel):
    """Fast-path switches of a run."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)

    channels_last: bool = Field(
        True, description="NHWC layout for conv models and image batches (oneDNN, tensor cores)"
    )
    amp: Literal["off", "bf16"] = Field(
        "off", description="CUDA: bf16 autocast for forward passes; perturbations stay fp32"
    )
    compile: bool = Field(False, description="torch.compile the model the training loop runs")
    threads: int | None = Field(
        None, ge=1, description="torch CPU threads for the run (default: as found; recorded)"
    )
    memory_share: float = Field(
        0.8,
        gt=0,
        le=1,
        description="refuse a config whose estimated memory passes this share of the device's",
    )
    deterministic: bool = Field(
        False,
        description="torch deterministic algorithms (cudnn.benchmark off): same numbers per run",
    )


DEFAULT = Performance()


@contextmanager
def performance(settings: Performance) -> Iterator[Performance]:
    """Run the enclosed code with the process-wide torch switches of `settings` (CPU threads,
    deterministic algorithms, cuDNN autotuning), restored afterwards."""
    threads = torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled()
    benchmark = torch.backends.cudnn.benchmark
    workspace = os.environ.get("CUBLAS_WORKSPACE_CONFIG")
    if settings.threads is not None:
        torch.set_num_threads(settings.threads)
    if settings.deterministic:
        # cuBLAS needs a fixed workspace for reproducible reductions (CUDA >= 10.2)
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    elif torch.cuda.is_available():
        torch.backends.cudnn.benchmark = True  # fixed shapes: pick the fastest kernels once
    try:
        yield settings
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)
        torch.backends.cudnn.benchmark = benchmark
        if workspace is None:
            os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)


def prepare_model(model: nn.Module, perf: Performance = DEFAULT) -> nn.Module:
    """`model` in the memory layout of `perf` (in place; only a look at the conv weights when
    already there, as it is on every PGD call inside training)."""
    if perf.channels_last:
        # every weight is checked: a 1-channel stem's [C,1,k,k] weight passes as channels_last
        # in either layout
        cl = torch.channels_last
        if not all(p.is_contiguous(memory_format=cl) for p in model.parameters() if p.ndim == 4):
            model.to(memory_format=cl)
    return model


def prepare_batch(x: torch.Tensor, perf: Performance = DEFAULT) -> torch.Tensor:
    """An image batch in the memory layout of `perf`."""
    if perf.channels_last and x.ndim == 4:
        return x.contiguous(memory_format=torch.channels_last)
    return x


def autocast(device: torch.device, perf: Performance = DEFAULT):
    """bf16 autocast on CUDA when `perf.amp` is on; otherwise nothing."""
    if perf.amp == "bf16" and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()
