"""Metrics: ACC, ASR, RA."""

from backdoorlab.metrics.core import Backdoor, accuracy, backdoor_metrics, evaluate

__all__ = ["Backdoor", "accuracy", "backdoor_metrics", "evaluate"]
