"""Models built by name for any input shape and class count; normalisation inside."""

from backdoorlab.models import lenet, resnet, small_cnn, wrn  # noqa: F401
from backdoorlab.models.base import (
    MODELS,
    Classifier,
    InputSpec,
    ModelConfig,
    Normalize,
    build_model,
    register_model,
)

__all__ = [
    "MODELS",
    "Classifier",
    "InputSpec",
    "ModelConfig",
    "Normalize",
    "build_model",
    "register_model",
]
