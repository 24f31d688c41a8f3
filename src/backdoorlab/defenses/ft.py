"""FT: fine-tune the infected model on the defender's clean subset (a post-training repair)."""

from __future__ import annotations

from pydantic import Field
from torch import nn

from backdoorlab.data.base import Dataset
from backdoorlab.defenses.base import (
    CleanRepair,
    DefenseConfig,
    DefenseContext,
    register_defense,
)


class FineTuneConfig(DefenseConfig):
    epochs: int = Field(10, ge=1)
    lr: float = Field(0.01, gt=0)
    batch_size: int = Field(128, ge=1)


@register_defense("ft", config=FineTuneConfig)
class FineTune(CleanRepair):
    """Fine-tune the infected model on the clean subset."""

    def fix(self, model: nn.Module, clean: Dataset, ctx: DefenseContext) -> nn.Module:
        c = self.cfg
        self.tune(
            model, clean, ctx, epochs=c.epochs, lr=c.lr, batch_size=c.batch_size, augment=True
        )
        return model
