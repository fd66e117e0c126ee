"""Slack failures on demand: the next calls of a method answer as a failing Slack would.

A Web API method answers 429 with ``Retry-After``, a 5xx, or HTTP 200 ``{"ok": false,
"error": code}``; a ``response_url`` (method ``_local.response``) answers a short text body,
as Slack's does. Standard library only; callers hold the workspace lock.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Fault", "Faults"]

Reply = tuple[int, Any, dict[str, str]]


@dataclass
class Fault:
    """The next ``times`` calls of ``method`` answer ``status`` (and ``error``)."""

    method: str
    status: int
    retry_after: int | None
    error: str | None
    times: int

    def _retry(self) -> dict[str, str]:
        return {} if self.retry_after is None else {"Retry-After": str(self.retry_after)}

    def api_reply(self) -> Reply:
        """A Web API answer: https://docs.slack.dev/apis/web-api/rate-limits for the 429."""
        if self.status == 429:
            return 429, {"ok": False, "error": self.error or "ratelimited"}, self._retry()
        if self.status >= 500:
            return self.status, {"ok": False, "error": self.error or "internal_error"}, {}
        return self.status, {"ok": False, "error": self.error or "fatal_error"}, {}

    def response_url_reply(self) -> Reply:
        """A response_url answer: text, 404 ``expired_url`` unless told otherwise."""
        if self.status == 429:
            return 429, self.error or "rate_limited", self._retry()
        if self.status >= 500:
            return self.status, self.error or "internal_error", {}
        return (404 if self.status == 200 else self.status), self.error or "expired_url", {}


class Faults:
    """The queue of injected faults, oldest first."""

    def __init__(self) -> None:
        self._queue: list[Fault] = []

    def add(self, method: str, *, status: int | None, retry_after: int | None,
            error: str | None, times: int) -> None:
        """Without ``status`` the fault is a 429, or HTTP 200 with ``error`` when given."""
        code = status if status is not None else (200 if error else 429)
        self._queue.append(Fault(method, code, retry_after, error, times))

    def take(self, method: str) -> Fault | None:
        """The fault for this call of ``method``; ``"*"`` matches any Web API method."""
        for fault in self._queue:
            if fault.method == method or (fault.method == "*" and "." in method
                                          and not method.startswith("_local.")):
                fault.times -= 1
                if fault.times <= 0:
                    self._queue.remove(fault)
                return fault
        return None
