"""Datasets: uint8 image tensors on the run's device, loaders by name, a batch iterator."""

from backdoorlab.data import (  # noqa: F401
    cifar,
    digits,
    gtsrb,
    imagefolder,
    mnist,
    photos,
    synthetic,
)
from backdoorlab.data.base import (
    DATASETS,
    Dataset,
    DatasetConfig,
    InputSpec,
    Splits,
    load_dataset,
    register_dataset,
)
from backdoorlab.data.iterator import Augment, BatchIterator

__all__ = [
    "DATASETS",
    "Augment",
    "BatchIterator",
    "Dataset",
    "DatasetConfig",
    "InputSpec",
    "Splits",
    "load_dataset",
    "register_dataset",
]
