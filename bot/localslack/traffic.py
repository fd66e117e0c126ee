"""What LocalSlack received: every request, for tests to assert on, and the errors it answered.

An error answered is also a refusal: kept in the workspace (``/_local/state`` shows it to the
terminal client) and logged with its code and JSON pointers, never the request body.
Standard library only.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from bot.localslack.workspace import Workspace

__all__ = ["RecordedRequest", "Traffic"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RecordedRequest:
    """One call the stand-in received: ``method`` is the Web API method name, or
    ``_local.upload`` / ``_local.response`` / ``_local.view_response`` for file uploads,
    response_url posts and view_submission acks. ``error`` is the code of a failed call;
    ``messages`` say why and where when the strict checks refused it."""

    method: str
    params: dict[str, Any]
    time: float
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    messages: tuple[str, ...] = ()


class Traffic:
    """The requests received, oldest first; thread-safe (it takes the workspace's lock)."""

    def __init__(self, ws: Workspace) -> None:
        self._ws = ws
        self._requests: list[RecordedRequest] = []

    def record(self, method: str, params: dict[str, Any], status: int,
               headers: dict[str, str], error: str | None = None,
               messages: tuple[str, ...] = ()) -> None:
        """Keep the request; an error answered is also a refusal, logged and in the state."""
        now = time.time()
        with self._ws.lock:
            self._requests.append(RecordedRequest(method, params, now, status, headers,
                                                  error, messages))
            if error is None:
                return
            self._ws.refusals.append({"n": len(self._ws.refusals) + 1, "method": method,
                                      "status": status, "error": error,
                                      "messages": list(messages), "time": now})
            self._ws.changed()
        # The error and its pointers only: a body can hold user data.
        _log.log(logging.WARNING if messages else logging.INFO,
                 "localslack: Slack refused %s: %s%s", method, error,
                 (" — " + "; ".join(messages)) if messages else "")

    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every request received, oldest first."""
        with self._ws.lock:
            return list(self._requests)
