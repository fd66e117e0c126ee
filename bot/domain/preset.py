"""Presets: ModelArts' "job parameters" — a saved JobSpec under a name."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from bot.domain.spec import JobSpec

__all__ = ["PRESET_NAME", "Preset"]

PRESET_NAME = r"^[A-Za-z0-9_-]{1,64}$"


class Preset(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=PRESET_NAME)
    scope: str = Field(min_length=1, max_length=128, description="team or channel id")
    description: str = Field(default="", max_length=256)
    spec: JobSpec
    owner: str
    created_at: datetime
    updated_at: datetime
