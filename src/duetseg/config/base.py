"""The base of every config model, and shared field types."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = ["StrictModel", "Triple"]

Triple = tuple[int, int, int]


class StrictModel(BaseModel):
    """Base model: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)
