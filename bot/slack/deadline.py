"""Slack retries that stop before the Lambda does.

slack_sdk's retry handlers sleep for ``Retry-After`` and try again: three 429s with
``Retry-After: 10`` take 30 s, longer than the Slack function may run (29 s). A retry that
can't finish in the time left only turns a refused message into a killed invocation, with
the work after it undone. So each invocation sets its deadline here, and the handlers below
retry only while the wait fits before it (minus a margin for the work that follows).
"""

from __future__ import annotations

import threading
import time
from typing import Any

from slack_sdk.http_retry.builtin_handlers import (
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)

__all__ = ["BoundedRateLimitRetryHandler", "BoundedServerErrorRetryHandler", "remaining_s",
           "set_deadline"]

MARGIN_S = 3.0  # kept for what follows the Slack call (a store write, the answer)
_state = threading.local()
_global: list[float | None] = [None]


def set_deadline(seconds_left: float | None) -> None:
    """This invocation has ``seconds_left`` (None: no deadline, e.g. a long-running server)."""
    _global[0] = None if seconds_left is None else time.monotonic() + seconds_left


def remaining_s() -> float | None:
    deadline = getattr(_state, "deadline", None) or _global[0]
    return None if deadline is None else deadline - time.monotonic()


def _fits(wait_s: float) -> bool:
    left = remaining_s()
    return left is None or wait_s + MARGIN_S < left


def _retry_after(response: Any) -> float:
    for key, values in (response.headers or {}).items():
        if key.lower() == "retry-after":
            value = values[0] if isinstance(values, list) else values
            try:
                return float(value)
            except ValueError:
                return 1.0
    return 1.0


class BoundedRateLimitRetryHandler(RateLimitErrorRetryHandler):
    """Honours ``Retry-After`` (429) while the wait fits before the deadline."""

    def _can_retry(self, *, state: Any, request: Any, response: Any = None,
                   error: Exception | None = None) -> bool:
        return (super()._can_retry(state=state, request=request, response=response, error=error)
                and _fits(_retry_after(response) + 1.0))


class BoundedServerErrorRetryHandler(ServerErrorRetryHandler):
    """Retries 500/503 while the back-off fits before the deadline."""

    def _can_retry(self, *, state: Any, request: Any, response: Any = None,
                   error: Exception | None = None) -> bool:
        return (super()._can_retry(state=state, request=request, response=response, error=error)
                and _fits(2.0 ** state.current_attempt))
