"""`nc`: Neural Cleanse's detection (Wang et al. 2019): the smallest trigger that sends clean
images to each class; a class whose trigger is anomalously small is a suspected target."""

from __future__ import annotations

import torch
from pydantic import Field
from torch import nn

from backdoorlab.data.base import Dataset
from backdoorlab.defenses.cleanse import NCConfig, reverse_trigger
from backdoorlab.detectors.base import Detection, DetectorConfig, register_detector


class NCDetectorConfig(DetectorConfig):
    steps: int = Field(300, ge=1, description="optimisation steps per class")
    batch_size: int = Field(128, ge=1)
    lr: float = Field(0.1, gt=0)
    init_cost: float = Field(1e-3, ge=0)


@register_detector("nc", config=NCDetectorConfig)
def neural_cleanse(model: nn.Module, data: Dataset, cfg: NCDetectorConfig) -> Detection:
    """Neural Cleanse: the smallest trigger's L1 norm per class; small outliers are suspects.

    The outlier score is the MAD anomaly index on the small side (NC Sec. IV-C); the search is
    the defense's own."""
    search = NCConfig(
        name="nc", steps=cfg.steps, batch_size=cfg.batch_size, lr=cfg.lr, init_cost=cfg.init_cost
    )
    norms = torch.tensor(
        [reverse_trigger(model, data, t, search, cfg.seed)[2] for t in range(data.num_classes)]
    )
    return Detection.from_values(
        "nc", norms, "low", cfg, "L1 norm of the reversed trigger's mask", {"steps": cfg.steps}
    )
