"""The classifier base: normalisation as the first layer, features, residual-group outputs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
from pydantic import Field
from torch import nn

from backdoorlab.config_base import Section
from backdoorlab.data.base import InputSpec
from backdoorlab.errors import ConfigError
from backdoorlab.limits import MAX_MODEL_PARAMETERS
from backdoorlab.registry import Registry

__all__ = [
    "Classifier",
    "InputSpec",
    "MODELS",
    "ModelConfig",
    "Normalize",
    "batchnorm_to_groupnorm",
    "build_model",
]


class ModelConfig(Section):
    """Options every model accepts."""

    norm: Literal["batch", "group"] = Field(
        "batch", description="normalisation layers: BatchNorm, or GroupNorm (per-sample, DP-SGD)"
    )
    norm_groups: int = Field(8, ge=1, description="GroupNorm groups (fewer where C needs)")


MODELS: Registry = Registry("model", ModelConfig)
register_model = MODELS.register


class Normalize(nn.Module):
    """(x - mean) / std per channel on [0,1] images; the first layer of every model."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class Classifier(nn.Module):
    """normalize -> stem -> groups (residual stages) -> head (pool to a vector) -> fc.

    Subclasses set those five modules; forward, `features` and `group_outputs` are shared.
    """

    normalize: Normalize
    stem: nn.Module
    groups: nn.ModuleList
    head: nn.Module
    fc: nn.Linear

    def group_outputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The output of every group (residual stage), for NAD, Fine-Pruning and analyses."""
        h = self.stem(self.normalize(x))
        outs = []
        for group in self.groups:
            h = group(h)
            outs.append(h)
        return outs

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate activations [B, D] of [0,1] images."""
        h = self.stem(self.normalize(x))
        for group in self.groups:
            h = group(h)
        return self.head(h)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


def batchnorm_to_groupnorm(module: nn.Module, groups: int = 8) -> nn.Module:
    """Replace every BatchNorm2d in `module` (in place) by a GroupNorm over the same channels.

    The group count is the largest divisor of the channel count not above `groups`, so the
    affine weight and bias keep their [C] shape. Per-sample statistics make per-sample gradients
    (DP-SGD) well defined.
    """
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            c = child.num_features
            g = max(d for d in range(1, min(groups, c) + 1) if c % d == 0)
            setattr(module, name, nn.GroupNorm(g, c, eps=child.eps, affine=child.affine))
        else:
            batchnorm_to_groupnorm(child, groups)
    return module


def on_meta(build: Callable[[], nn.Module], what: str) -> nn.Module:
    """`build()` on the meta device: shapes without memory. Sizes past 64 bits are a
    ConfigError saying `what` cannot be built."""
    try:
        with torch.device("meta"):
            return build()
    except RuntimeError:
        raise ConfigError(f"{what} cannot be built: its sizes pass 64 bits") from None


def meta_model(section: ModelConfig, spec: InputSpec) -> nn.Module:
    """The model of `section` on the meta device (no memory taken)."""
    sizes = ", ".join(
        f"{k}={v}" for k, v in section.model_dump().items() if isinstance(v, int) and v > 1
    )
    return on_meta(
        lambda: MODELS.get(section.name)(section, spec), f"model {section.name} at {sizes}"
    )


def parameter_count(section: ModelConfig, spec: InputSpec) -> int:
    """How many parameters the model of `section` has, counted on the meta device."""
    return sum(p.numel() for p in meta_model(section, spec).parameters())


def build_model(section: ModelConfig, spec: InputSpec) -> Classifier:
    """Build the model that `section` names for inputs described by `spec`; one past
    MAX_MODEL_PARAMETERS is refused before any memory is taken."""
    n = parameter_count(section, spec)
    if n > MAX_MODEL_PARAMETERS:
        raise ConfigError(
            f"model {section.name}: {n:,} parameters ({4 * n / 2**30:,.0f} GiB of float32 "
            f"weights), more than the limit of {MAX_MODEL_PARAMETERS:,}; lower its width or depth"
        )
    model = MODELS.get(section.name)(section, spec)
    if not isinstance(model, Classifier):
        raise TypeError(f"model '{section.name}' must build a backdoorlab Classifier")
    if section.norm == "group":
        batchnorm_to_groupnorm(model, section.norm_groups)
    return model
