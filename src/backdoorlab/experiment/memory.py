"""What a config will ask of the run device's memory, estimated before the first allocation:
the data and its augmented copy, the model with its optimiser state, and the largest batch's
activations and perturbation buffers."""

from __future__ import annotations

import torch
from torch import nn

from backdoorlab.data.base import InputSpec
from backdoorlab.experiment.config import ExperimentConfig
from backdoorlab.limits import Need, check_memory
from backdoorlab.models.base import meta_model

# a training batch keeps each layer's output for backward, and its gradient; PGD and the
# defenses that craft inputs add a few image-sized buffers per sample
ACTIVATION_COPIES = 3
IMAGE_BUFFERS = 6


def activations_per_sample(model: nn.Module, spec: InputSpec) -> int:
    """Bytes of float32 layer outputs of one image's forward pass through `model`, a model on
    the meta device (no memory taken)."""
    total = 0

    def count(_module: nn.Module, _inputs: object, out: object) -> None:
        nonlocal total
        if isinstance(out, torch.Tensor):
            total += out[0].numel() * 4

    model.eval()
    handles = [m.register_forward_hook(count) for m in model.modules() if m is not model]
    try:
        model(torch.empty(1, spec.channels, *spec.size, device="meta"))
    finally:
        for h in handles:
            h.remove()
    return total


def batch_sizes(cfg: ExperimentConfig) -> dict[str, int]:
    """Every batch size the config sets, by key."""
    sizes = {
        "train.batch_size": cfg.train.batch_size,
        "train.eval_batch_size": cfg.train.eval_batch_size,
    }
    for section in ("attack", "defense"):
        for key, value in getattr(cfg, section).model_dump().items():
            if key.endswith("batch_size") and isinstance(value, int):
                sizes[f"{section}.{key}"] = value
    return sizes


def estimate(cfg: ExperimentConfig, spec: InputSpec, n_train: int, n_test: int) -> list[Need]:
    """What the run will hold at its peak, each with the key that sets it."""
    c, (h, w) = spec.channels, spec.size
    image = c * h * w
    needs = [Need("dataset", f"{n_train + n_test:,} images", (n_train + n_test) * image)]
    needs.append(Need("attack", "a poisoned copy of the training set", n_train * image))
    p, copies = cfg.train.crop_padding, 2 if cfg.train.flip else 1
    if p or cfg.train.flip:
        padded = copies * n_train * c * (h + 2 * p) * (w + 2 * p)
        needs.append(Need("train.crop_padding", "the padded (and mirrored) copy", padded))
    model = meta_model(cfg.model, spec)
    params = sum(p.numel() for p in model.parameters())
    needs.append(
        Need("model", f"{params:,} parameters with gradients and optimiser state", 16 * params)
    )
    key, batch = max(batch_sizes(cfg).items(), key=lambda kv: kv[1])
    batch = min(batch, max(n_train, n_test))  # a batch larger than the data is the data
    per_sample = ACTIVATION_COPIES * activations_per_sample(model, spec) + IMAGE_BUFFERS * image * 4
    needs.append(
        Need(key, f"a batch of {batch:,} with activations and buffers", batch * per_sample)
    )
    return needs


def check_config_memory(
    cfg: ExperimentConfig, spec: InputSpec, n_train: int, n_test: int, device: object = None
) -> None:
    """ConfigError in one line when the run of `cfg` would pass its memory share."""
    check_memory(estimate(cfg, spec, n_train, n_test), cfg.performance.memory_share, device)
