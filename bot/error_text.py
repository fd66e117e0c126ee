"""The one place that turns any exception into text a user may see.

Expected failures (:class:`TrainbotError`) show their message and hint. Anything else shows
a short error id; the traceback goes to the log under the same id — never ``str(exc)``,
which can leak internals or secrets.
"""

from __future__ import annotations

import logging
import secrets

from bot.domain import TrainbotError

__all__ = ["user_text"]


def user_text(exc: BaseException, *, log: logging.Logger) -> str:
    if isinstance(exc, TrainbotError):
        return exc.user_text()
    error_id = secrets.token_hex(4)
    log.error("unexpected error %s", error_id, exc_info=exc)
    return (f"Something went wrong on trainbot's side (error id `{error_id}`). "
            "Try again; if it keeps failing, give the id to your trainbot admin.")
