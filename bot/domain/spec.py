"""JobSpec: what one version runs. Immutable once a version is created."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

from bot.domain.algorithm import HPValue

__all__ = ["DATA_URI", "JobSpec"]

# s3://bucket/key, file:///abs/path, or builtin:<name> (the algorithm's bundled default).
# \Z, not $: "$" also matches before a trailing newline, which would let one through.
DATA_URI = re.compile(r"^(s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/\S*)?|file:///\S*|builtin:\S+)\Z")
CHANNEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")

DEFAULT_MAX_RUNTIME_S = 4 * 3600
MAX_RUNTIME_LIMIT_S = 28 * 24 * 3600  # SageMaker's MaxRuntimeInSeconds ceiling


class JobSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    algorithm: str
    algorithm_version: str
    # A registered (custom) algorithm's exact version: its source digest; None for presets.
    algorithm_digest: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    hyperparameters: dict[str, HPValue] = Field(default_factory=dict)
    data: dict[str, str] = Field(default_factory=dict)
    pool: str
    max_runtime_s: int = Field(default=DEFAULT_MAX_RUNTIME_S, ge=1, le=MAX_RUNTIME_LIMIT_S)
    spot: bool = False
    preset: str | None = None
    # Data handed over in the chat: channel → where it came from ("slack:F0123ABC train.csv
    # sha256:…"); ``data`` holds where training reads it.
    data_origin: dict[str, str] = Field(default_factory=dict)

    @field_validator("data")
    @classmethod
    def _data(cls, v: dict[str, str]) -> dict[str, str]:
        for name, uri in v.items():
            if not CHANNEL_NAME.match(name):
                raise ValueError(f"invalid channel name {name!r}")
            if not DATA_URI.match(uri):
                raise ValueError(
                    f"data for channel {name!r} must be an s3://bucket/prefix, file:/// path "
                    f"or builtin: URI, got {uri!r}"
                )
        return v

    def changes_from(self, other: JobSpec) -> dict[str, tuple[object, object]]:
        """Field-level differences ``{name: (other's, self's)}``; hyperparameters as ``hp.x``."""
        out: dict[str, tuple[object, object]] = {}
        for key in sorted(set(self.hyperparameters) | set(other.hyperparameters)):
            a, b = other.hyperparameters.get(key), self.hyperparameters.get(key)
            if a != b:
                out[key] = (a, b)
        for key in sorted(set(self.data) | set(other.data)):
            a, b = other.data.get(key), self.data.get(key)
            if a != b:
                out[f"data.{key}"] = (a, b)
        for attr in ("algorithm", "algorithm_version", "pool", "max_runtime_s", "spot"):
            a, b = getattr(other, attr), getattr(self, attr)
            if a != b:
                out[attr] = (a, b)
        return out
