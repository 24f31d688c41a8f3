"""Neural Attention Distillation (Li et al. 2021): fine-tune a teacher on the clean subset, then
train the infected model (student) on it with attention maps distilled from the teacher."""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from backdoorlab.defenses.base import Defense, DefenseConfig, DefenseContext, register_defense
from backdoorlab.defenses.finetune import need_clean, tune_config
from backdoorlab.train.hooks import Batch, Hook
from backdoorlab.train.loop import fit


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


def attention(features: torch.Tensor, power: float = 2.0) -> torch.Tensor:
    """NAD attention map of a group output [B,C,H,W]: sum_c |f|^p, flattened, L2-normalised."""
    a = features.abs().pow(power).sum(1).flatten(1)
    return F.normalize(a, dim=1)


class _Distill(Hook):
    """CE + sum_i beta_i * MSE(A_student^i, A_teacher^i) over the last groups (NAD Eq. 3-4)."""

    def __init__(self, teacher: nn.Module, betas: list[float], power: float) -> None:
        self.teacher, self.betas, self.power = teacher, betas, power

    def train_step(self, state, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        model = state.model
        outs = model.group_outputs(batch.x)
        logits = model.fc(model.head(outs[-1]))
        with torch.no_grad():
            t_outs = self.teacher.group_outputs(batch.x)
        loss = F.cross_entropy(logits, batch.y)
        n = len(self.betas)
        for beta, s, t in zip(self.betas, outs[-n:], t_outs[-n:], strict=True):
            loss = loss + beta * F.mse_loss(attention(s, self.power), attention(t, self.power))
        loss.backward()
        return loss.detach(), logits.detach()


@register_defense("nad", config=NADConfig)
class NAD(Defense):
    """Attention distillation from a clean-fine-tuned teacher at the residual-group outputs."""

    post_training = True

    def repair(self, model: nn.Module, ctx: DefenseContext) -> nn.Module:
        c = self.cfg
        clean = need_clean(ctx, "nad")
        betas = c.betas[-len(model.groups) :]  # a model with fewer groups: the last weights
        teacher = copy.deepcopy(model)
        t_cfg = tune_config(ctx, c.teacher_epochs, c.lr, c.batch_size, augment=True)
        fit(teacher, clean, t_cfg, seed=ctx.seed, progress=False, description="nad teacher")
        teacher.eval()
        s_cfg = tune_config(ctx, c.epochs, c.lr, c.batch_size, augment=True)
        fit(
            model,
            clean,
            s_cfg,
            [_Distill(teacher, betas, c.power)],
            seed=ctx.seed,
            progress=False,
            description="nad student",
        )
        return model
