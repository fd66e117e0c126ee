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
    # The longest a version may run here (start, rerun, preset, sweep trial); None: only
    # SageMaker's own 28 days.
    max_runtime_hours: float | None = Field(default=None, gt=0, le=28 * 24)
    # Active versions one user / one channel may have on this pool (instead of
    # TRAINBOT_MAX_ACTIVE_PER_USER / _PER_CHANNEL, which count every pool).
    max_active_per_user: int | None = Field(default=None, ge=1)
    max_active_per_channel: int | None = Field(default=None, ge=1)
    # Managed spot's expected saving on this pool's price (0.7: a run costs 30 %).
    spot_discount: float = Field(default=0.7, ge=0, lt=1)
    # Slack user or user-group IDs that may launch here; empty means everyone.
    allowed_launchers: list[str] = Field(default_factory=list)

    @property
    def is_gpu(self) -> bool:
        return self.gpu_count > 0

    @property
    def total_gpus(self) -> int:
        return self.gpu_count * self.instance_count

    def estimate_cost(self, seconds: float, *, spot: bool = False) -> float:
        """Price of holding every instance of the pool for ``seconds`` (on managed spot:
        with the pool's expected spot discount)."""
        price = self.hourly_price_usd * self.instance_count * seconds / 3600.0
        return round(price * ((1.0 - self.spot_discount) if spot else 1.0), 4)

    @property
    def max_runtime_s(self) -> int | None:
        return None if self.max_runtime_hours is None else int(self.max_runtime_hours * 3600)
