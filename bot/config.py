"""All configuration, read from the environment in one place.

``TRAINBOT_*`` → :class:`Settings`; ``SLACK_*`` → :class:`SlackSettings` (plain Python in
``bot.slack.settings``, so the Lambda ack path reads it without importing pydantic).

Bad configuration fails at start with a :class:`ConfigError` that names the variable.
"""

from __future__ import annotations

import getpass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bot.domain.errors import ConfigError

__all__ = ["RerunApproval", "Settings", "load_settings"]

REPO_ROOT = Path(__file__).resolve().parents[1]
IdList = Annotated[list[str], NoDecode]


class RerunApproval(StrEnum):
    ALWAYS = "always"
    GPU = "gpu"
    NEVER = "never"


class Settings(BaseSettings):
    """Environment variables, documented in the README's configuration table."""

    model_config = SettingsConfigDict(env_prefix="TRAINBOT_", extra="ignore", frozen=True)

    home: Path = Field(default_factory=lambda: Path.home() / ".trainbot")
    store: Literal["sqlite", "dynamodb"] = "sqlite"
    table: str = "trainbot"
    compute: Literal["local", "sagemaker"] = "local"
    pools: Path | None = None
    algorithms_dir: Path = REPO_ROOT / "algorithms"
    user: str = Field(default_factory=lambda: _os_user())
    scope: str = "local"
    approvers: IdList = Field(default_factory=list)
    admins: IdList = Field(default_factory=list)
    # Who may `trainbot algorithms add/remove` (besides the admins); users and user groups.
    algorithm_publishers: IdList = Field(default_factory=list)
    channels: IdList = Field(default_factory=list)
    rerun_approval: RerunApproval = RerunApproval.ALWAYS
    allow_self_approval: bool = False
    approval_ttl_minutes: int = Field(default=24 * 60, ge=1)
    stuck_after_minutes: int = Field(default=30, ge=1)
    tensorboard_port: int = Field(default=6006, ge=0, le=65535)
    # Active versions (queued to launch, starting, training, …) one user / one channel may
    # have at once across every pool; over it a launch waits QUEUED. None: no cap.
    max_active_per_user: int | None = Field(default=None, ge=1)
    max_active_per_channel: int | None = Field(default=None, ge=1)
    # Budgets from a file (YAML: budgets: [{channel: C…, limit_usd: 500, policy: approve}]);
    # `/train budget set` adds to and overrides them in the store.
    budgets: Path | None = None
    # `trainbot run` / `serve`: how often the local reconcile pass runs (the scheduled Lambda's).
    reconcile_interval_s: float = Field(default=60.0, gt=0)
    job_prefix: str = Field(default="trainbot", pattern=r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,15}$")
    # Local compute: the folders data named from Slack may come from (colon-separated, like
    # PATH); default $TRAINBOT_HOME/data. The CLI may read any file its OS user can.
    data_dirs: Annotated[list[Path], NoDecode] = Field(default_factory=list,
                                                       validate_default=True)

    @field_validator("data_dirs", mode="before")
    @classmethod
    def _data_dirs(cls, v: object, info: object) -> object:
        if isinstance(v, str):
            v = [Path(p.strip()).expanduser() for p in v.split(":") if p.strip()]
        if not v:  # unset or empty: the home's data folder (home is validated before this)
            home = (getattr(info, "data", None) or {}).get("home")
            return [Path(home) / "data"] if home is not None else v
        return v

    # AWS mode
    sagemaker_role_arn: str | None = None
    bucket: str | None = None
    allowed_buckets: IdList = Field(default_factory=list)
    catalog: Path | None = None
    kms_key_id: str | None = None
    subnets: IdList = Field(default_factory=list)
    security_groups: IdList = Field(default_factory=list)
    keep_alive_seconds: int = Field(default=0, ge=0, le=3600)
    idempotency_table: str | None = None

    @field_validator("approvers", "admins", "algorithm_publishers", "channels",
                     "allowed_buckets", "subnets", "security_groups", mode="before")
    @classmethod
    def _split(cls, v: object) -> object:
        if isinstance(v, str):
            return [part.strip() for part in v.split(",") if part.strip()]
        return v

    @property
    def db_path(self) -> Path:
        return self.home / "trainbot.db"

    @property
    def runs_dir(self) -> Path:
        return self.home / "runs"


def _os_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry in some containers
        return "local-user"


def load_settings(**overrides: object) -> Settings:
    """Read settings from the environment; turn validation errors into one clear message."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]  # pydantic validates the values
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"]) or "?"
            var = f"TRAINBOT_{field.upper()}"
            problems.append(f"{var}: {err['msg']}")
        raise ConfigError("Bad configuration — " + "; ".join(problems)) from exc
