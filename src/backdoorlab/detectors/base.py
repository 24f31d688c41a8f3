"""The detector interface: a registry of functions (model, clean data, config) -> Detection."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from pydantic import Field
from torch import nn

from backdoorlab.config_base import Section
from backdoorlab.data.base import Dataset
from backdoorlab.metrics.detection import mad_index
from backdoorlab.registry import Registry


class DetectorConfig(Section):
    """Options every detector accepts."""

    threshold: float = Field(
        2.0, gt=0, description="flag classes whose anomaly index exceeds this (NC's 2)"
    )
    seed: int = Field(0, description="seed of the detector's own randomness")


DETECTORS: Registry = Registry("detector", DetectorConfig)
register_detector = DETECTORS.register


@dataclass
class Detection:
    """What a detector found: per-class raw values and anomaly scores, the model-level score
    (the largest anomaly score), suspected target classes, and the detector's own numbers."""

    detector: str
    values: list[float]
    scores: list[float]
    suspects: list[int]
    score: float
    value_name: str
    seconds: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)
    side: str = "high"  # which values are suspicious: 'high' (adv-labels) or 'low' (nc)
    scale: str = "linear"  # how profiles compare: 'log' (shares, norms) or 'linear' (margins)
    # the smallest step the values can take (a share over n images: 100/n; 0: continuous);
    # detections kept before it was recorded count as continuous
    resolution: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_values(
        cls,
        detector: str,
        values: torch.Tensor,
        side: str,
        cfg: DetectorConfig,
        value_name: str,
        details: dict[str, Any],
        scale: str = "linear",
        resolution: float = 0.0,
    ) -> Detection:
        """Per-class `values`, scored by their MAD anomaly index on `side`; classes above the
        threshold are suspects, most anomalous first."""
        index = mad_index(values, side)
        suspects = [c for c in range(len(values)) if index[c] > cfg.threshold]
        return cls(
            detector,
            [round(float(v), 3) for v in values],
            [round(float(s), 3) for s in index],
            sorted(suspects, key=lambda c: -float(index[c])),
            round(float(index.max()), 3),
            value_name,
            details=details,
            side=side,
            scale=scale,
            resolution=resolution,
        )


def canonical(data: Dataset) -> Dataset:
    """`data` in an order fixed by its content (label, then an integer hash of the pixels), so a
    detector's findings do not depend on how the user's data happens to be ordered."""
    gen = torch.Generator().manual_seed(0)
    weights = torch.randint(1 << 20, (data.images[0].numel(),), generator=gen).to(data.device)
    digest = torch.cat(
        [(part.flatten(1).long() * weights).sum(1) for part in data.images.split(4096)]
    )
    order = digest.sort(stable=True).indices
    order = order[data.labels[order].sort(stable=True).indices]
    return data.subset(order)


def run_detector(
    name: str, model: nn.Module, data: Dataset, config: DetectorConfig | dict | None = None
) -> Detection:
    """Run registered detector `name` on `model` with clean `data` (on the model's device);
    `config` is its validated config or a mapping of options."""
    if isinstance(config, DetectorConfig):
        cfg = config
    else:
        cfg = DETECTORS.validate({"name": name, **(config or {})})
    was = model.training
    model.eval()
    t0 = time.perf_counter()
    try:
        found = DETECTORS.get(name)(model, canonical(data), cfg)
    finally:
        model.train(was)
    found.seconds = round(time.perf_counter() - t0, 3)
    return found
