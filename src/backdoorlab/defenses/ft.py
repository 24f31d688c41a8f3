"""FT: fine-tune the infected model on the defender's clean subset (a post-training repair)."""

from __future__ import annotations

from pydantic import Field
from torch import nn

from backdoorlab.defenses.base import (
    Defense,
    DefenseConfig,
    DefenseContext,
    need_clean,
    register_defense,
    tune,
    tune_config,
)


class FineTuneConfig(DefenseConfig):
    epochs: int = Field(10, ge=1)
    lr: float = Field(0.01, gt=0)
    batch_size: int = Field(128, ge=1)


@register_defense("ft", config=FineTuneConfig)
class FineTune(Defense):
    """Fine-tune the infected model on the clean subset."""

    post_training = True

    def repair(self, model: nn.Module, ctx: DefenseContext) -> nn.Module:
        c = self.cfg
        clean = need_clean(ctx, "ft")
        tune(model, clean, tune_config(ctx, c.epochs, c.lr, c.batch_size, True), ctx, (), "ft")
        return model
