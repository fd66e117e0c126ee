"""The exception tree. One place (``bot.slack``/``bot.cli``) turns these into user text.

    TrainbotError
    ├── InvalidInput        the user asked for something malformed (shows usage / the fix)
    ├── NotFound            a job, version, preset, approval, algorithm or pool that isn't there
    ├── NotAllowed          the user may not do this (says who can)
    ├── Conflict            the thing exists / was decided / changed under us
    │   └── StaleWrite      optimistic write lost a race (services retry)
    ├── ConfigError         bad configuration at start (names the variable)
    ├── BackendError        compute or cloud failure with user-facing text
    │   ├── QuotaExceeded   e.g. SageMaker ResourceLimitExceeded
    │   └── BackendRejected the backend refused the request (ValidationException)
    └── ChatUndelivered     the chat didn't take a message (``code`` says why, e.g.
                            ``not_in_channel``, ``ratelimited``)
"""

from __future__ import annotations

__all__ = [
    "BackendError",
    "BackendRejected",
    "ChatUndelivered",
    "ConfigError",
    "Conflict",
    "InvalidInput",
    "NotAllowed",
    "NotFound",
    "QuotaExceeded",
    "StaleWrite",
    "TrainbotError",
]


class TrainbotError(Exception):
    """Base of every error whose message is safe to show a user."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def user_text(self) -> str:
        return f"{self.message}\n{self.hint}" if self.hint else self.message

    def __str__(self) -> str:
        return self.user_text()


class InvalidInput(TrainbotError):
    pass


class NotFound(TrainbotError):
    pass


class NotAllowed(TrainbotError):
    pass


class Conflict(TrainbotError):
    pass


class StaleWrite(Conflict):
    """A conditional write found the record changed since it was read."""


class ConfigError(TrainbotError):
    pass


class BackendError(TrainbotError):
    pass


class QuotaExceeded(BackendError):
    pass


class BackendRejected(BackendError):
    pass


class ChatUndelivered(TrainbotError):
    """The chat refused or couldn't take a message. ``code`` is the chat's own error code
    (Slack's ``error`` field, ``ratelimited`` for HTTP 429, ``http_500`` …)."""

    def __init__(self, code: str, message: str | None = None) -> None:
        super().__init__(message or f"the chat didn't take the message ({code})")
        self.code = code
