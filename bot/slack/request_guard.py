"""A check Bolt's own verification leaves out.

Bolt answers 500 when ``X-Slack-Request-Timestamp`` isn't a number (it calls ``int()`` on it
before comparing signatures). Such a request is forged or broken either way: answer 401, as
for any other failed verification, before Bolt sees it.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["UNAUTHORIZED_BODY", "bad_timestamp"]

UNAUTHORIZED_BODY = '{"error": "invalid request"}'


def bad_timestamp(headers: Mapping[str, object]) -> bool:
    """True when a timestamp header is present but not a plain integer."""
    for key, value in headers.items():
        if key.lower() == "x-slack-request-timestamp":
            raw = value[0] if isinstance(value, list | tuple) and value else value
            return not (isinstance(raw, str) and raw.strip().isdigit())
    return False
