"""LeNet-5 (LeCun et al. 1998): two 5x5 conv-pool stages and a fully connected head over every
position, the flatten head that small_cnn's global pooling does not have."""

from __future__ import annotations

from pydantic import Field
from torch import nn

from backdoorlab.errors import ConfigError
from backdoorlab.models.base import Classifier, InputSpec, ModelConfig, Normalize, register_model


class LeNetConfig(ModelConfig):
    width: int = Field(
        6, ge=1, le=4096, description="channels of the first conv (16 in the second at 6)"
    )
    hidden: int = Field(120, ge=1, le=65536, description="units of the first fully connected layer")


@register_model("lenet", config=LeNetConfig)
class LeNet(Classifier):
    """conv5-ReLU-pool, conv5-ReLU-pool, flatten, fc-ReLU, fc-ReLU, fc (ReLU and max-pooling
    where the original had tanh and subsampling)."""

    def __init__(self, cfg: LeNetConfig, spec: InputSpec) -> None:
        super().__init__()
        c1, c2 = cfg.width, cfg.width * 16 // 6
        h, w = spec.size
        if min(h, w) < 12:
            raise ConfigError(f"`model.name`: lenet needs images of at least 12x12, not {h}x{w}")
        self.normalize = Normalize(spec.mean, spec.std)
        self.stem = nn.Sequential(
            nn.Conv2d(spec.channels, c1, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(2)
        )
        self.groups = nn.ModuleList(
            [nn.Sequential(nn.Conv2d(c1, c2, 5), nn.ReLU(inplace=True), nn.MaxPool2d(2))]
        )
        side = ((h // 2 - 4) // 2) * ((w // 2 - 4) // 2)
        hidden2 = max(1, cfg.hidden * 84 // 120)
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(c2 * side, cfg.hidden),
            nn.ReLU(inplace=True),
            nn.Linear(cfg.hidden, hidden2),
            nn.ReLU(inplace=True),
        )
        self.fc = nn.Linear(hidden2, spec.num_classes)
