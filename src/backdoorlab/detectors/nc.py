"""`nc`: Neural Cleanse's detection (Wang et al. 2019): the smallest trigger that sends clean
images to each class; a class whose trigger is anomalously small is a suspected target."""

from __future__ import annotations

import torch
from torch import nn

from backdoorlab.data.base import Dataset
from backdoorlab.detectors.base import Detection, DetectorConfig, register_detector
from backdoorlab.detectors.trigger_search import TriggerSearch, reverse_trigger


class NCDetectorConfig(DetectorConfig, TriggerSearch):
    """Neural Cleanse's trigger search, with the reference implementation's budget."""


@register_detector("nc", config=NCDetectorConfig)
def neural_cleanse(model: nn.Module, data: Dataset, cfg: NCDetectorConfig) -> Detection:
    """Neural Cleanse: the smallest trigger's L1 norm per class; small outliers are suspects.

    The outlier score is the MAD anomaly index on the small side (NC Sec. IV-C); the `nc`
    defense runs the same search."""
    norms = torch.tensor(
        [reverse_trigger(model, data, t, cfg, cfg.seed)[2] for t in range(data.num_classes)]
    )
    return Detection.from_values(
        "nc",
        norms,
        "low",
        cfg,
        "L1 norm of the reversed trigger's mask",
        {"steps": cfg.steps},
        scale="log",
    )
