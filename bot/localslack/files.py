"""Files as Slack keeps them: the file object, where it is shared, and downloads that need
the bot token.

- :func:`new_file` makes a file record shaped like Slack's file object
  (https://docs.slack.dev/reference/objects/file-object): ``id``, ``name``, ``title``,
  ``mimetype``, ``filetype``, ``pretty_type``, ``user``, ``size``, ``mode: hosted``,
  ``url_private`` / ``url_private_download`` (``<base>/files-pri/<TEAM>-<FILE>/[download/]<name>``,
  Slack's ``https://files.slack.com/files-pri/…`` shape), ``permalink``
  (``<base>/files/<USER>/<FILE>/<name>``, Slack's ``https://<team>.slack.com/files/…``),
  ``channels`` / ``groups`` / ``ims`` (the public channels, private channels and DMs it is
  shared in), ``shares`` and ``is_public``. :func:`public_file` is what the Web API returns
  of a record; the keys in :data:`INTERNAL` are the stand-in's bookkeeping.
- :func:`share_file` shares a record in a conversation; :func:`user_file` is a *user*
  uploading a file, shared in a channel (:func:`post_user_share`: the message that leaves)
  or nowhere (a modal's ``file_input``).
- :class:`FileServer` answers ``GET url_private[_download]`` only with ``Authorization:
  Bearer <bot token>`` (and ``files:read``): anything else gets Slack's sign-in page as HTML
  with HTTP 200, which a downloader must notice (https://api.slack.com/types/file#auth).

Standard library only.
"""

from __future__ import annotations

import copy
import mimetypes
import re
import secrets
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, unquote

from bot.localslack.faults import Reply
from bot.localslack.signing import TEAM_ID
from bot.localslack.traffic import Traffic
from bot.localslack.workspace import ApiError, Workspace

__all__ = [
    "DEFAULT_SCOPES",
    "INTERNAL",
    "LOGIN_PAGE",
    "NEEDED_SCOPES",
    "FileServer",
    "check_scope",
    "new_file",
    "post_user_share",
    "public_file",
    "share_file",
    "user_file",
]

# The bot scopes infra/slack-app-manifest.yml asks for.
DEFAULT_SCOPES = frozenset({"commands", "chat:write", "files:read", "files:write",
                            "usergroups:read"})
# https://docs.slack.dev/reference/methods/files.info (files:read) and the upload methods.
NEEDED_SCOPES = {"files.info": "files:read", "files.getUploadURLExternal": "files:write",
                 "files.completeUploadExternal": "files:write"}
INTERNAL = ("uploaded", "completed", "deleted")

# Slack's filetype / pretty_type for the extensions trainbot meets (a small part of its list).
_TYPES = {"csv": ("csv", "CSV"), "tsv": ("tsv", "TSV"), "txt": ("text", "Plain Text"),
          "json": ("json", "JSON"), "jsonl": ("text", "Plain Text"), "gz": ("gzip", "GZip"),
          "zip": ("zip", "Zip"), "png": ("png", "PNG"), "jpg": ("jpg", "JPEG"),
          "log": ("text", "Plain Text"), "py": ("python", "Python"), "md": ("markdown", "Markdown"),
          "html": ("html", "HTML"), "parquet": ("binary", "Binary"), "npz": ("binary", "Binary")}

# What Slack answers a file URL without a valid token: its sign-in page, HTTP 200.
LOGIN_PAGE = b"""<!DOCTYPE html>
<html lang="en-US"><head><meta charset="utf-8"><title>Slack</title></head>
<body><h1>Sign in to local</h1><p>local.slack.com</p>
<form method="post" action="/signin"><input type="email" name="email">
<button type="submit">Sign In</button></form></body></html>
"""
_HTML = {"Content-Type": "text/html; charset=utf-8"}
_FILE_PATH = re.compile(r"/files-pri/(?P<team>[A-Z0-9]+)-(?P<id>F[A-Z0-9]+)/(?P<rest>.+)")


def check_scope(method: str, scopes: frozenset[str]) -> None:
    """Slack's ``missing_scope`` answer, which says what was ``needed`` and ``provided``."""
    needed = NEEDED_SCOPES.get(method)
    if needed and needed not in scopes:
        raise ApiError("missing_scope", needed=needed, provided=",".join(sorted(scopes)))


def _kind(name: str) -> tuple[str, str, str]:
    """(filetype, pretty_type, mimetype) of a file named ``name``."""
    ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    filetype, pretty = _TYPES.get(ext, ("binary", "Binary"))
    mimetype = mimetypes.guess_type(name)[0] or (
        "text/plain" if filetype == "text" else "application/octet-stream")
    return filetype, pretty, mimetype


def new_file(ws: Workspace, *, user: str, name: str, size: int,
             title: str | None = None) -> dict[str, Any]:
    """A new file record of ``user``'s, shared nowhere yet, kept in ``ws.files``."""
    file_id = ws.next_id("F")
    filetype, pretty, mimetype = _kind(name)
    now = int(time.time())
    quoted = quote(name, safe="")
    private = f"{ws.base_url}/files-pri/{TEAM_ID}-{file_id}"
    record: dict[str, Any] = {
        "id": file_id, "created": now, "timestamp": now, "name": name, "title": title or name,
        "mimetype": mimetype, "filetype": filetype, "pretty_type": pretty, "user": user,
        "user_team": TEAM_ID, "editable": False, "size": size, "mode": "hosted",
        "is_external": False, "external_type": "", "is_public": False,
        "public_url_shared": False, "display_as_bot": False, "username": "",
        "url_private": f"{private}/{quoted}",
        "url_private_download": f"{private}/download/{quoted}",
        "permalink": f"{ws.base_url}/files/{user}/{file_id}/{quoted}",
        "permalink_public": f"{ws.base_url}/files-pub/{TEAM_ID}-{file_id}-{secrets.token_hex(5)}",
        "comments_count": 0, "is_starred": False, "shares": {}, "channels": [], "groups": [],
        "ims": [], "has_rich_preview": False, "file_access": "visible",
        "uploaded": False, "completed": False, "deleted": False,
    }
    ws.files[file_id] = record
    return record


def public_file(record: dict[str, Any]) -> dict[str, Any]:
    """The file object the Web API returns (no bookkeeping keys), a copy."""
    return copy.deepcopy({k: v for k, v in record.items() if k not in INTERNAL})


def _where(ws: Workspace, channel_id: str) -> tuple[str, str]:
    """(the file object's list, the ``shares`` key) for a conversation: DMs are ``ims``,
    private channels ``groups``, the rest ``channels``."""
    if channel_id.startswith("D"):
        return "ims", "private"
    if channel_id.startswith("G") or ws.channel(channel_id).get("is_private"):
        return "groups", "private"
    return "channels", "public"


def share_file(ws: Workspace, record: dict[str, Any], channel_id: str,
               message: dict[str, Any], *, by: str) -> None:
    """Record that ``record`` is shared in ``channel_id`` by ``message`` (from ``by``)."""
    listed, visibility = _where(ws, channel_id)
    share: dict[str, Any] = {"reply_users": [], "reply_users_count": 0, "reply_count": 0,
                             "ts": message["ts"], "channel_name": ws.channel(channel_id)["name"],
                             "team_id": TEAM_ID, "share_user_id": by, "source": "UNKNOWN"}
    if message.get("thread_ts"):
        share["thread_ts"] = message["thread_ts"]
    record["shares"].setdefault(visibility, {}).setdefault(channel_id, []).append(share)
    if channel_id not in record[listed]:
        record[listed].append(channel_id)
    record["is_public"] = bool(record["channels"])


def post_user_share(ws: Workspace, channel_id: str, user: str, record: dict[str, Any],
                    comment: str = "") -> dict[str, Any]:
    """The message ``user`` leaves by sharing ``record`` in ``channel_id`` (a
    ``file_share`` message: https://docs.slack.dev/reference/events/message/file_share)."""
    ws.channel(channel_id)
    message: dict[str, Any] = {
        "type": "message", "subtype": "file_share", "text": comment, "user": user,
        "team": TEAM_ID, "upload": True, "display_as_bot": False, "ts": ws.next_ts(),
    }
    share_file(ws, record, channel_id, message, by=user)
    message["files"] = [public_file(record)]
    ws.top[channel_id].append(message)
    ws.changed()
    return message


def user_file(ws: Workspace, user: str, name: str, content: bytes, *,
              channel: str | None = None, title: str | None = None,
              comment: str = "") -> dict[str, Any]:
    """``user`` uploads ``content`` as ``name``: shared in ``channel`` with a ``file_share``
    message, or, without one, shared nowhere (what a modal's ``file_input`` makes). Callers
    hold ``ws.lock``. Returns the file object."""
    if user not in ws.users:
        raise ApiError("user_not_found")
    if not name or "/" in name or "\\" in name:
        raise ApiError("invalid_arguments")
    record = new_file(ws, user=user, name=name, size=len(content), title=title)
    record.update(uploaded=True, completed=True)
    ws.file_bytes[record["id"]] = bytes(content)
    if channel:
        post_user_share(ws, channel, user, record, comment)
    else:
        ws.changed()
    return public_file(record)


class FileServer:
    """``GET /files-pri/<TEAM>-<FILE>/[download/]<name>``: the file's bytes for the bot
    token with ``files:read``; Slack's sign-in page (HTML, 200) for anyone else."""

    def __init__(self, ws: Workspace, bot_token: str, scopes: frozenset[str],
                 traffic: Traffic) -> None:
        self._ws = ws
        self._token = bot_token
        self._scopes = scopes
        self._traffic = traffic

    def serve(self, path: str, headers: Mapping[str, str]) -> Reply:
        auth = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
        token = auth.removeprefix("Bearer ").strip() if auth.startswith("Bearer ") else ""
        found = _FILE_PATH.fullmatch(path)
        file_id = found["id"] if found else ""
        status, error, reply = self._answer(found, token)
        self._traffic.record("_local.download", {"file_id": file_id, "path": path}, status,
                             {}, error)
        return reply

    def _answer(self, found: re.Match[str] | None, token: str) -> tuple[int, str | None, Reply]:
        if not token:
            return 200, "not_authed", (200, LOGIN_PAGE, _HTML)
        if token != self._token or "files:read" not in self._scopes:
            return 200, "invalid_auth", (200, LOGIN_PAGE, _HTML)
        with self._ws.lock:
            record = self._ws.files.get(found["id"]) if found else None
            data = self._ws.file_bytes.get(record["id"]) if record else None
            if record is None or data is None or record["deleted"] or found is None \
                    or found["team"] != TEAM_ID:
                return 404, "file_not_found", (404, b"File not found", _HTML)
            rest = found["rest"]
            download = rest.startswith("download/")
            if unquote(rest.removeprefix("download/")) != record["name"]:
                return 404, "file_not_found", (404, b"File not found", _HTML)
            headers = {"Content-Type": record["mimetype"]}
        if download:
            headers["Content-Disposition"] = (
                f"attachment; filename*=UTF-8''{quote(record['name'], safe='')}")
        return 200, None, (200, data, headers)
