"""Trigger-free detectors: (model, clean data) -> per-class scores and suspected target classes."""

from backdoorlab.detectors import adv_labels, mm_bd, nc  # noqa: F401
from backdoorlab.detectors.base import (
    DETECTORS,
    Detection,
    DetectorConfig,
    mad_index,
    register_detector,
    run_detector,
)

__all__ = [
    "DETECTORS",
    "Detection",
    "DetectorConfig",
    "mad_index",
    "register_detector",
    "run_detector",
]
