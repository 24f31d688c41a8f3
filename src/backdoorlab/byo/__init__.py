"""Bring your own model: evaluate, repair and scan a plain `nn.Module` on the user's data."""

from backdoorlab.byo.api import evaluate, repair
from backdoorlab.byo.scanning import scan

__all__ = ["evaluate", "repair", "scan"]
