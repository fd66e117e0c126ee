"""Request parameters as Slack takes them: query strings, JSON, form and multipart bodies.

Standard library only.
"""

from __future__ import annotations

import contextlib
import email.parser
import email.policy
import json
from typing import Any
from urllib.parse import parse_qsl

__all__ = ["decode_json_fields", "flag", "form_payload", "parse_params"]

# Form-encoded callers send these as JSON strings; JSON callers send them as values.
_JSON_FIELDS = ("blocks", "attachments", "view", "files", "metadata")


def decode_json_fields(params: dict[str, Any]) -> dict[str, Any]:
    """``params`` with the fields a form caller sent as JSON strings decoded, in place."""
    for key in _JSON_FIELDS:
        value = params.get(key)
        if isinstance(value, str) and value[:1] in ("[", "{"):
            with contextlib.suppress(ValueError):  # left as sent; the method rejects it
                params[key] = json.loads(value)
    return params


def _parse_multipart(content_type: str, body: bytes) -> dict[str, Any]:
    head = f"Content-Type: {content_type}\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    params: dict[str, Any] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        # A file part keeps its bytes; a field is text. decode=True gives bytes for a leaf part.
        data = payload if isinstance(payload, bytes) else b""
        params[str(name)] = data if part.get_filename() else data.decode()
    return params


def parse_params(query: str, content_type: str, body: bytes) -> dict[str, Any]:
    """Merge query string and body (JSON, form or multipart) into one dict of params."""
    params: dict[str, Any] = dict(parse_qsl(query, keep_blank_values=True))
    kind = content_type.split(";")[0].strip().lower()
    if not body:
        pass
    elif kind == "application/json":
        params.update(json.loads(body))
    elif kind == "multipart/form-data":
        params.update(_parse_multipart(content_type, body))
    else:
        params.update(parse_qsl(body.decode(), keep_blank_values=True))
    return decode_json_fields(params)


def form_payload(body: bytes) -> dict[str, Any]:
    """A form body, with Slack's ``payload=<json>`` convention unwrapped."""
    form = dict(parse_qsl(body.decode(), keep_blank_values=True))
    return json.loads(form["payload"]) if "payload" in form else form


def flag(value: Any) -> bool:
    """A boolean param as Slack reads it: ``true``, ``"true"`` or ``"1"``."""
    return value is True or str(value).lower() in ("true", "1")
