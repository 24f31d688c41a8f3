"""Base schemas shared by every config section."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """A config section that selects a component by `name`; unknown keys are errors."""

    model_config = ConfigDict(
        extra="forbid", allow_inf_nan=False, validate_assignment=True, frozen=False
    )

    name: str
