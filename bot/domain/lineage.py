"""Lineage: data → algorithm → preset → parent versions → this version → model."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Lineage", "LineageNode"]


class LineageNode(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: str  # data | algorithm | preset | version | approval | model
    label: str
    detail: str = ""
    link: str | None = None


class Lineage(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    job: str
    version: int
    nodes: list[LineageNode] = Field(default_factory=list)
