"""Metrics: ACC, ASR, RA."""

from backdoorlab.metrics.core import Backdoor, accuracy, backdoor_metrics, measure

__all__ = ["Backdoor", "accuracy", "backdoor_metrics", "measure"]
