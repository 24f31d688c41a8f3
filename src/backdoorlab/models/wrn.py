"""Wide ResNet WRN-depth-k (Zagoruyko & Komodakis); WRN-16-1 by default."""

from __future__ import annotations

from pydantic import Field, field_validator
from torch import nn

from backdoorlab.models.base import Classifier, InputSpec, ModelConfig, Normalize, register_model
from backdoorlab.models.resnet import PreActBlock, make_groups


class WRNConfig(ModelConfig):
    depth: int = Field(16, ge=10, le=1000, description="6n+4 layers (the deepest published: 40)")
    widen: int = Field(1, ge=1, description="width multiplier k")

    @field_validator("depth")
    @classmethod
    def _six_n_plus_four(cls, v: int) -> int:
        if (v - 4) % 6:
            raise ValueError("depth must be 6n+4 (10, 16, 22, 28, ...)")
        return v


@register_model("wrn", config=WRNConfig)
class WideResNet(Classifier):
    """WRN: channels 16/16k/32k/64k, (depth-4)/6 pre-activation blocks per group, strides 1/2/2."""

    def __init__(self, cfg: WRNConfig, spec: InputSpec) -> None:
        super().__init__()
        n, k = (cfg.depth - 4) // 6, cfg.widen
        widths = [16 * k, 32 * k, 64 * k]
        self.normalize = Normalize(spec.mean, spec.std)
        self.stem = nn.Conv2d(spec.channels, 16, 3, 1, 1, bias=False)
        self.groups = make_groups(PreActBlock, widths, [n] * 3, [1, 2, 2], 16)
        self.head = nn.Sequential(
            nn.BatchNorm2d(widths[-1]), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1), nn.Flatten()
        )
        self.fc = nn.Linear(widths[-1], spec.num_classes)


register_model("wrn16_1", config=WRNConfig)(WideResNet)
