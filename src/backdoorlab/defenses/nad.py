"""Neural Attention Distillation (Li et al. 2021): fine-tune a teacher on the clean subset, then
train the infected model (student) on it with attention maps distilled from the teacher."""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from backdoorlab.data.base import Dataset
from backdoorlab.defenses.base import (
    CleanRepair,
    DefenseConfig,
    DefenseContext,
    register_defense,
)
from backdoorlab.errors import ConfigError
from backdoorlab.models.base import Classifier
from backdoorlab.models.layers import capture, default_layer
from backdoorlab.train.hooks import Batch, Hook


class NADConfig(DefenseConfig):
    teacher_epochs: int = Field(10, ge=1, description="clean fine-tuning epochs of the teacher")
    epochs: int = Field(20, ge=1, description="distillation epochs of the student")
    lr: float = Field(0.01, gt=0, description="Gao used 0.01")
    batch_size: int = Field(64, ge=1)
    betas: list[float] = Field(
        default_factory=lambda: [500.0, 1000.0, 1000.0],
        description="attention-loss weights of the last groups (BackdoorBench); leading ones "
        "are dropped for a model with fewer groups",
    )
    power: float = Field(2.0, gt=0, description="attention A = sum_c |f|^power")
    layers: list[str] | None = Field(
        None,
        description="modules whose attention is distilled (e.g. [layer3, layer4]), one beta each "
        "from the end of betas; default: a Classifier's last groups, else the last conv block",
    )


def attention(features: torch.Tensor, power: float = 2.0) -> torch.Tensor:
    """NAD attention map of a group output [B,C,H,W]: sum_c |f|^p, flattened, L2-normalised."""
    a = features.abs().pow(power).sum(1).flatten(1)
    return F.normalize(a, dim=1)


class _Distill(Hook):
    """CE + sum_i beta_i * MSE(A_student^i, A_teacher^i) over `layers` (NAD Eq. 3-4), their
    outputs read with forward hooks."""

    def __init__(
        self, teacher: nn.Module, layers: list[str], betas: list[float], power: float
    ) -> None:
        self.teacher, self.layers, self.betas, self.power = teacher, layers, betas, power

    def train_step(self, state, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        with capture(state.model, self.layers) as outs:
            logits = state.model(batch.x)
        with torch.no_grad(), capture(self.teacher, self.layers) as t_outs:
            self.teacher(batch.x)
        loss = F.cross_entropy(logits, batch.y)
        for beta, name in zip(self.betas, self.layers, strict=True):
            s, t = attention(outs[name], self.power), attention(t_outs[name], self.power)
            loss = loss + beta * F.mse_loss(s, t)
        loss.backward()
        return loss.detach(), logits.detach()


def nad_layers(model: nn.Module, cfg: NADConfig, example: torch.Tensor) -> list[str]:
    """The modules NAD distils: configured, a Classifier's last groups, or the last conv block."""
    if cfg.layers:
        if len(cfg.layers) > len(cfg.betas):
            raise ConfigError(
                f"defense.layers: {len(cfg.layers)} layers but {len(cfg.betas)} betas"
            )
        return list(cfg.layers)
    if isinstance(model, Classifier):
        n = min(len(cfg.betas), len(model.groups))
        return [f"groups.{i}" for i in range(len(model.groups) - n, len(model.groups))]
    return [default_layer(model, example)]


@register_defense("nad", config=NADConfig)
class NAD(CleanRepair):
    """Attention distillation from a clean-fine-tuned teacher at the residual-group outputs."""

    def fix(self, model: nn.Module, clean: Dataset, ctx: DefenseContext) -> nn.Module:
        c = self.cfg
        layers = nad_layers(model, c, clean.head())
        ctx.findings["nad_layers"] = layers  # the layers whose attention is distilled
        betas = c.betas[-len(layers) :]  # fewer layers than betas: the last weights
        teacher = copy.deepcopy(model)
        self.tune(teacher, clean, ctx, epochs=c.teacher_epochs, lr=c.lr, batch_size=c.batch_size,
                  augment=True, description="nad teacher")  # fmt: skip
        teacher.eval()
        self.tune(model, clean, ctx, epochs=c.epochs, lr=c.lr, batch_size=c.batch_size,
                  augment=True, hooks=[_Distill(teacher, layers, betas, c.power)],
                  description="nad student")  # fmt: skip
        return model
