"""Slack credentials and the Web API address, from ``SLACK_*`` environment variables.

Plain Python rather than pydantic-settings: the Lambda ack path reads these and nothing else
from the configuration, and must not pay pydantic's import on a cold start. Secrets stay in
:class:`Secret`, which never prints its value.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

__all__ = ["DEFAULT_API_URL", "Secret", "SlackSettings"]

DEFAULT_API_URL = "https://slack.com/api/"


class Secret:
    """A secret string: ``repr``/``str`` show asterisks; ``get_secret_value()`` the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get_secret_value(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def _secret(value: Any) -> Secret | None:
    """``None``/empty → ``None``; text → ``Secret``; anything with ``get_secret_value``
    (pydantic's ``SecretStr``, a ``Secret``) → its value, wrapped."""
    if value is None or isinstance(value, Secret):
        return value
    text = value.get_secret_value() if hasattr(value, "get_secret_value") else str(value)
    return Secret(text) if text else None


@dataclass(frozen=True)
class SlackSettings:
    """``SLACK_SIGNING_SECRET``, ``SLACK_BOT_TOKEN``, ``SLACK_APP_TOKEN``, ``SLACK_API_URL``."""

    signing_secret: Secret | None = None
    bot_token: Secret | None = None
    app_token: Secret | None = None
    api_url: str = DEFAULT_API_URL

    def __post_init__(self) -> None:
        for name in ("signing_secret", "bot_token", "app_token"):
            object.__setattr__(self, name, _secret(getattr(self, name)))
        object.__setattr__(self, "api_url", self.api_url or DEFAULT_API_URL)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any
                 ) -> SlackSettings:
        """Each field from ``SLACK_<FIELD>`` (empty counts as unset); ``overrides`` win."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(f"SLACK_{f.name.upper()}", "").strip()
            if raw:
                values[f.name] = raw
        values.update(overrides)
        return cls(**values)
