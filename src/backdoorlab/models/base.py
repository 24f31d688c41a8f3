"""The classifier base: normalisation as the first layer, features, residual-group outputs."""

from __future__ import annotations

import torch
from torch import nn

from backdoorlab.config_base import Section
from backdoorlab.data.base import InputSpec
from backdoorlab.registry import Registry

__all__ = ["Classifier", "InputSpec", "MODELS", "ModelConfig", "Normalize", "build_model"]


class ModelConfig(Section):
    """Options every model accepts."""


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


def build_model(section: ModelConfig, spec: InputSpec) -> Classifier:
    """Build the model that `section` names for inputs described by `spec`."""
    model = MODELS.get(section.name)(section, spec)
    if not isinstance(model, Classifier):
        raise TypeError(f"model '{section.name}' must build a backdoorlab Classifier")
    return model
