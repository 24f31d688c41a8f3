"""The training section of a config."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class TrainConfig(BaseModel):
    """SGD with momentum and weight decay, a learning-rate schedule, batched augmentation."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, validate_assignment=True)

    epochs: int = Field(10, ge=1)
    batch_size: int = Field(128, ge=1)
    lr: float = Field(0.1, gt=0, description="initial (step, cosine) or peak (onecycle) rate")
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(5e-4, ge=0)
    nesterov: bool = False
    schedule: Literal["constant", "step", "cosine", "onecycle"] = "cosine"
    milestones: list[int] = Field(default_factory=list, description="epochs of lr drops (step)")
    gamma: float = Field(0.1, gt=0, le=1, description="lr factor at each milestone (step)")
    crop_padding: int = Field(0, ge=0, description="random crop after zero padding of N pixels")
    flip: bool = Field(False, description="random horizontal flip")
    eval_batch_size: int = Field(512, ge=1)
    eval_every: int = Field(1, ge=0, description="evaluate on the test set every N epochs (0: end)")
    collapse_patience: int = Field(
        2,
        ge=0,
        description="stop when training accuracy falls back to chance for N epochs (0: never)",
    )

    @model_validator(mode="after")
    def _milestones(self) -> TrainConfig:
        if self.schedule == "step" and not self.milestones:
            raise ValueError("schedule 'step' needs milestones (epochs)")
        if any(m < 1 or m > self.epochs for m in self.milestones):
            raise ValueError(f"milestones must lie in 1..epochs ({self.epochs})")
        return self
