"""Resource pools: named CPU/GPU compute a job runs on."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ResourcePool"]


class ResourcePool(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,31}$")
    description: str = ""
    instance_type: str = Field(min_length=1)
    instance_count: int = Field(default=1, ge=1, le=64)
    gpu_count: int = Field(default=0, ge=0, description="GPUs per instance")
    hourly_price_usd: float = Field(default=0.0, ge=0, description="per instance")
    volume_size_gb: int = Field(default=30, ge=1, le=16384)
    spot_allowed: bool = False
    requires_approval: bool = False
    max_concurrent: int | None = Field(default=None, ge=1)
    # Slack user or user-group IDs that may launch here; empty means everyone.
    allowed_launchers: list[str] = Field(default_factory=list)

    @property
    def is_gpu(self) -> bool:
        return self.gpu_count > 0

    @property
    def total_gpus(self) -> int:
        return self.gpu_count * self.instance_count

    def estimate_cost(self, seconds: float) -> float:
        """Price of holding every instance of the pool for ``seconds``."""
        return round(self.hourly_price_usd * self.instance_count * seconds / 3600.0, 4)
