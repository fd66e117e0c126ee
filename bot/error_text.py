"""The one place that turns any exception into text a user may see.

Expected failures (:class:`TrainbotError`) show their message and hint. Anything else shows
a short error id; the traceback goes to the log under the same id — never ``str(exc)``,
which can leak internals or secrets.

Who reads the log differs: on Slack-on-AWS the user hands the id to an admin; in a local
single-user run (the CLI, `trainbot run` with its local Slack) the user *is* the admin, so
the text says where the log is instead (:func:`report_to_log`).
"""

from __future__ import annotations

import logging
import secrets
from pathlib import Path

from bot.domain import TrainbotError

__all__ = ["report_to_log", "user_text"]

# Set by the local entrypoints: the log file the user can read themselves.
_local_log: Path | None = None


def report_to_log(path: Path | None) -> None:
    """Make unexpected errors point at ``path`` (a local single-user run); ``None`` restores
    the Slack wording (give the id to your admin)."""
    global _local_log
    _local_log = path


def user_text(exc: BaseException, *, log: logging.Logger, log_path: Path | None = None) -> str:
    if isinstance(exc, TrainbotError):
        return exc.user_text()
    error_id = secrets.token_hex(4)
    log.error("unexpected error %s", error_id, exc_info=exc)
    where = log_path or _local_log
    if where is not None:
        return (f"Something went wrong inside trainbot (error id `{error_id}`). "
                f"The details are in {where} under that id.")
    return (f"Something went wrong on trainbot's side (error id `{error_id}`). "
            "Try again; if it keeps failing, give the id to your trainbot admin.")
