"""ResNet-18 and PreAct-ResNet-18 in their CIFAR form (3x3 stem, no max-pool)."""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import nn

from backdoorlab.errors import ConfigError
from backdoorlab.models.base import Classifier, InputSpec, ModelConfig, Normalize, register_model


class BasicBlock(nn.Module):
    """conv-BN-ReLU-conv-BN plus shortcut, then ReLU (He et al. 2016)."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class PreActBlock(nn.Module):
    """BN-ReLU-conv-BN-ReLU-conv plus shortcut (He et al. 2016, identity mappings)."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.shortcut = None
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Conv2d(c_in, c_out, 1, stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(x))
        shortcut = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(torch.relu(self.bn2(out)))
        return out + shortcut


def make_groups(block: type[nn.Module], widths, depths, strides, c_in: int) -> nn.ModuleList:
    """Stages of `block`s; the first block of each stage carries its stride."""
    groups = []
    for width, depth, stride in zip(widths, depths, strides, strict=True):
        blocks = []
        for i in range(depth):
            blocks.append(block(c_in, width, stride if i == 0 else 1))
            c_in = width
        groups.append(nn.Sequential(*blocks))
    return nn.ModuleList(groups)


class ResNetConfig(ModelConfig):
    """ResNet options (the defaults are the papers' 64-channel ResNet-18)."""

    width: int = Field(64, ge=1, description="channels of the first stage (doubled per stage)")
    stem: Literal["cifar", "imagenet"] = Field(
        "cifar",
        description="cifar: 3x3 conv; imagenet: 7x7/2 conv + 3x3/2 max-pool (torchvision's "
        "layout, resnet18 only)",
    )


@register_model("resnet18", config=ResNetConfig)
class ResNet18(Classifier):
    """ResNet-18 for 32x32 inputs: BasicBlocks [2,2,2,2], 64/128/256/512 channels."""

    def __init__(self, cfg: ResNetConfig, spec: InputSpec) -> None:
        super().__init__()
        w = cfg.width
        self.normalize = Normalize(spec.mean, spec.std)
        if cfg.stem == "imagenet":
            self.stem = nn.Sequential(
                nn.Conv2d(spec.channels, w, 7, 2, 3, bias=False),
                nn.BatchNorm2d(w),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(3, 2, 1),
            )
        else:
            self.stem = nn.Sequential(
                nn.Conv2d(spec.channels, w, 3, 1, 1, bias=False),
                nn.BatchNorm2d(w),
                nn.ReLU(inplace=True),
            )
        self.groups = make_groups(
            BasicBlock, [w, 2 * w, 4 * w, 8 * w], [2, 2, 2, 2], [1, 2, 2, 2], w
        )
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(8 * w, spec.num_classes)


@register_model("preact_resnet18", config=ResNetConfig)
class PreActResNet18(Classifier):
    """PreAct-ResNet-18: pre-activation blocks, no final BN-ReLU (BackdoorBench's shape)."""

    def __init__(self, cfg: ResNetConfig, spec: InputSpec) -> None:
        super().__init__()
        w = cfg.width
        if cfg.stem != "cifar":
            raise ConfigError("model.stem: preact_resnet18 has the CIFAR stem only")
        self.normalize = Normalize(spec.mean, spec.std)
        self.stem = nn.Conv2d(spec.channels, w, 3, 1, 1, bias=False)
        self.groups = make_groups(
            PreActBlock, [w, 2 * w, 4 * w, 8 * w], [2, 2, 2, 2], [1, 2, 2, 2], w
        )
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(8 * w, spec.num_classes)
