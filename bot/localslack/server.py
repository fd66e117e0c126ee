"""A local stand-in for the Slack Web API: a workspace in a box on loopback.

Point ``slack_sdk.WebClient(token=..., base_url=slack.api_url)`` (or trainbot's
``SLACK_API_URL``) at it and it answers the Web API methods trainbot uses with Slack's own
response shapes, keeps channels, threads, ephemerals, modals and files in memory, and records
every call so tests assert on the traffic instead of mocking the client (the way bolt-python's
own tests run a mock Web API server).

Besides ``/api/<method>`` it serves a few endpoints Slack itself does not have, for the
terminal client and tests (all under ``/_local/``):

- ``GET  /_local/state?since=N&wait=S`` the whole workspace as JSON with a ``version`` counter;
  with ``wait`` it long-polls until the version passes ``since``.
- ``GET  /_local/files/<id>`` an uploaded file's bytes; ``POST /_local/upload/<id>`` is the
  ``upload_url`` that ``files.getUploadURLExternal`` hands out.
- ``POST /_local/interaction`` registers a click or command: ``{channel, user, message_ts?}`` →
  ``{trigger_id, response_url}``.
- ``POST /_local/response/<token>`` a ``response_url`` (at most 5 uses, like Slack's).
- ``POST /_local/view_response`` applies a ``view_submission`` ack (close, update, push,
  clear or errors) to the modal stack.

It is strict, always: every ``blocks``, ``text`` and ``view`` goes through
:class:`~bot.localslack.strict.StrictRules` and an invalid one is refused the way Slack refuses
it (``invalid_blocks`` with JSON pointers, ``invalid_arguments``, ``msg_too_long``); a
``trigger_id`` from :meth:`LocalSlack.new_interaction` opens one view within ``trigger_ttl_s``.
Every error answered (refusals and injected faults alike) is in :meth:`LocalSlack.refusals`
and under ``refusals`` in ``/_local/state``. Every public method is thread-safe.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import email.parser
import email.policy
import itertools
import json
import logging
import mimetypes
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlsplit

from bot.localslack.faults import Faults
from bot.localslack.signing import API_APP_ID, TEAM_DOMAIN, TEAM_ID, new_trigger_id
from bot.localslack.strict import DEFAULT_LINK_HOSTS, Refusal, StrictRules

__all__ = [
    "BOT_ID",
    "BOT_USER_ID",
    "DEFAULT_CHANNEL",
    "DEFAULT_USERS",
    "LocalSlack",
    "RecordedRequest",
]

_log = logging.getLogger(__name__)
T = TypeVar("T")

BOT_USER_ID = "U0BOT"
BOT_ID = "B0LOCAL"
BOT_NAME = "trainbot"
DEFAULT_CHANNEL = "C0LOCAL"
DEFAULT_USERS = {"U0LOCAL1": "you", "U0LOCAL2": "approver", "U0LOCAL3": "oncall"}
RESPONSE_URL_USES = 5  # https://api.slack.com/interactivity/handling#message_responses
# Form-encoded callers send these as JSON strings; JSON callers send them as values.
_JSON_FIELDS = ("blocks", "attachments", "view", "files", "metadata")
_USER_ID = re.compile(r"[UW][A-Z0-9]+")
_BOT_PROFILE = {"id": BOT_ID, "app_id": API_APP_ID, "name": BOT_NAME, "team_id": TEAM_ID}


class _ApiError(Exception):
    """A Web API failure answered as ``{"ok": false, "error": code}``."""

    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


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


def _decode_json_fields(params: dict[str, Any]) -> dict[str, Any]:
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
        payload = part.get_payload(decode=True) or b""
        params[str(name)] = payload if part.get_filename() else payload.decode()
    return params


def _parse_params(query: str, content_type: str, body: bytes) -> dict[str, Any]:
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
    return _decode_json_fields(params)


def _flag(value: Any) -> bool:
    return value is True or str(value).lower() in ("true", "1")


def _require(params: dict[str, Any], *names: str) -> None:
    for name in names:
        if params.get(name) in (None, ""):
            raise _ApiError(f"missing_{name}" if name != "channel" else "channel_not_found")


class _Workspace:
    """The in-memory workspace and its operations. Callers hold ``lock``."""

    def __init__(self, users: dict[str, str], usergroups: dict[str, list[str]]) -> None:
        self.lock = threading.Condition(threading.RLock())
        self.version = 0
        self.base_url = ""
        self.users = dict(users)
        self.usergroups = self._make_usergroups(usergroups)
        self.channels: dict[str, dict[str, Any]] = {}
        self.top: dict[str, list[dict[str, Any]]] = {}  # channel -> top-level messages
        self.threads: dict[tuple[str, str], list[dict[str, Any]]] = {}  # (channel, root ts)
        self.edits: dict[tuple[str, str], int] = {}
        self.ephemerals: list[dict[str, Any]] = []
        self.views: dict[str, dict[str, Any]] = {}  # id -> {"view", "user", "open", "errors"}
        self.stacks: dict[str, list[str]] = {}  # root view id -> open view ids, top last
        self.files: dict[str, dict[str, Any]] = {}
        self.file_bytes: dict[str, bytes] = {}
        self.responses: dict[str, dict[str, Any]] = {}
        self.triggers: dict[str, dict[str, Any]] = {}  # id -> {"user", "issued", "used"}
        self.absent: set[tuple[str, str]] = set()  # (channel, user) not in the channel
        self.refusals: list[dict[str, Any]] = []
        self._last_ts = 0
        self._ids = itertools.count(1)
        self.channel(DEFAULT_CHANNEL, "trainbot-local")

    @staticmethod
    def _make_usergroups(groups: dict[str, list[str]]) -> dict[str, dict[str, Any]]:
        """Keys that look like ids (``S…``) are ids; other keys are handles given an id."""
        made: dict[str, dict[str, Any]] = {}
        for n, (key, members) in enumerate(groups.items(), start=1):
            is_id = key[:1] == "S" and key.isalnum() and key.upper() == key
            group_id = key if is_id else f"S0LOCAL{n}"
            handle = key.lower() if is_id else key
            made[group_id] = {"id": group_id, "team_id": TEAM_ID, "name": handle,
                              "handle": handle, "description": "", "is_usergroup": True,
                              "users": list(members), "user_count": len(members)}
        return made

    # ----------------------------------------------------------------- helpers
    def changed(self) -> None:
        self.version += 1
        self.lock.notify_all()

    def next_id(self, prefix: str) -> str:
        return f"{prefix}0L{next(self._ids):07d}"

    def next_ts(self) -> str:
        """Unique, increasing message timestamps shaped like Slack's ``1700000000.000100``."""
        micros = max(int(time.time() * 1_000_000), self._last_ts + 1)
        self._last_ts = micros
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    def channel(self, channel_id: str, name: str | None = None) -> dict[str, Any]:
        """The channel, created on first use: any id the bot posts to becomes a channel."""
        if channel_id not in self.channels:
            self.channels[channel_id] = {
                "id": channel_id, "name": name or channel_id.lower(), "is_channel": True,
                "is_private": False, "is_archived": False, "is_member": True,
                "created": int(time.time()), "creator": BOT_USER_ID,
                "topic": {"value": "", "creator": "", "last_set": 0},
                "purpose": {"value": "", "creator": "", "last_set": 0},
            }
            self.top[channel_id] = []
        return self.channels[channel_id]

    def find(self, channel_id: str, ts: str) -> dict[str, Any]:
        for message in self.top.get(channel_id, []):
            if message["ts"] == ts:
                return message
        for (channel, _), replies in self.threads.items():
            for message in replies:
                if channel == channel_id and message["ts"] == ts:
                    return message
        raise _ApiError("message_not_found")

    def new_message(self, params: dict[str, Any]) -> dict[str, Any]:
        if not any(params.get(k) for k in ("text", "blocks", "attachments", "files")):
            raise _ApiError("no_text")
        message: dict[str, Any] = {
            "type": "message", "user": BOT_USER_ID, "bot_id": BOT_ID, "app_id": API_APP_ID,
            "team": TEAM_ID, "text": params.get("text") or "", "ts": self.next_ts(),
            "bot_profile": dict(_BOT_PROFILE),
        }
        for key in ("blocks", "attachments", "metadata", "username", "icon_emoji"):
            if params.get(key):
                message[key] = params[key]
        return message

    def post(self, channel_id: str, params: dict[str, Any]) -> dict[str, Any]:
        """Store a bot message at the top level or, with ``thread_ts``, in a thread."""
        self.channel(channel_id)
        message = self.new_message(params)
        if params.get("files"):
            message["files"] = params["files"]
            message["upload"] = False
        root = self.thread_root(channel_id, params.get("thread_ts"))
        if root is None:
            self.top[channel_id].append(message)
        else:
            message["thread_ts"] = root["ts"]
            message["parent_user_id"] = root.get("user", BOT_USER_ID)
            replies = self.threads.setdefault((channel_id, root["ts"]), [])
            replies.append(message)
            root.update(thread_ts=root["ts"], reply_count=len(replies),
                        latest_reply=message["ts"], reply_users=[BOT_USER_ID],
                        reply_users_count=1)
            if _flag(params.get("reply_broadcast")):
                message["subtype"] = "thread_broadcast"
                self.top[channel_id].append(message)
        self.changed()
        return message

    def thread_root(self, channel_id: str, thread_ts: Any) -> dict[str, Any] | None:
        """The thread's parent; a ts Slack has never seen posts at the top level instead."""
        if not thread_ts:
            return None
        try:
            message = self.find(channel_id, str(thread_ts))
        except _ApiError:
            return None
        parent_ts = message.get("thread_ts", message["ts"])
        if parent_ts == message["ts"]:
            return message
        try:
            return self.find(channel_id, parent_ts)
        except _ApiError:
            return None

    def edit(self, channel_id: str, ts: str, params: dict[str, Any]) -> dict[str, Any]:
        message = self.find(channel_id, ts)
        for key in ("text", "blocks", "attachments", "metadata"):
            if key in params and params[key] is not None:
                message[key] = params[key]
        message["edited"] = {"user": BOT_USER_ID, "ts": self.next_ts()}
        self.edits[(channel_id, ts)] = self.edits.get((channel_id, ts), 0) + 1
        self.changed()
        return message

    def delete(self, channel_id: str, ts: str) -> None:
        message = self.find(channel_id, ts)
        self.top[channel_id] = [m for m in self.top[channel_id] if m is not message]
        self.threads.pop((channel_id, ts), None)
        root_ts = message.get("thread_ts")
        if root_ts and root_ts != ts:
            replies = self.threads.get((channel_id, root_ts), [])
            replies[:] = [m for m in replies if m is not message]
        self.changed()

    def ephemeral(self, channel_id: str, user: str, params: dict[str, Any],
                  source: str) -> dict[str, Any]:
        self.channel(channel_id)
        message = self.new_message(params)
        message.update(channel=channel_id, recipient=user, message_ts=message["ts"],
                       source=source, replaced=0)
        if params.get("thread_ts"):
            message["thread_ts"] = params["thread_ts"]
        self.ephemerals.append(message)
        self.changed()
        return message

    def find_ephemeral(self, ts: str) -> dict[str, Any] | None:
        return next((e for e in self.ephemerals if e["ts"] == ts), None)

    def public(self, message: dict[str, Any]) -> dict[str, Any]:
        """A message as the Web API returns it (a deep copy)."""
        return copy.deepcopy(message)

    def local_message(self, channel_id: str, message: dict[str, Any]) -> dict[str, Any]:
        """A message for the state view: Slack's shape plus ``replies`` and ``edit_count``."""
        out = copy.deepcopy(message)
        out["edit_count"] = self.edits.get((channel_id, message["ts"]), 0)
        if message.get("subtype") != "thread_broadcast":
            replies = self.threads.get((channel_id, message["ts"]), [])
            out["replies"] = [
                dict(copy.deepcopy(r), edit_count=self.edits.get((channel_id, r["ts"]), 0))
                for r in replies
            ]
        return out

    def user_object(self, user_id: str) -> dict[str, Any]:
        if user_id == BOT_USER_ID:
            name, is_bot = BOT_NAME, True
        elif user_id in self.users:
            name, is_bot = self.users[user_id], False
        else:
            raise _ApiError("user_not_found")
        profile = {"real_name": name, "display_name": name, "email": f"{name}@local.test"}
        return {"id": user_id, "team_id": TEAM_ID, "name": name, "real_name": name,
                "deleted": False, "is_bot": is_bot, "is_admin": False, "tz": "UTC",
                "profile": profile}

    def view_record(self, params: dict[str, Any]) -> dict[str, Any]:
        if params.get("view_id") in self.views:
            return self.views[params["view_id"]]
        external = params.get("external_id")
        for record in reversed(list(self.views.values())):
            if external and record["open"] and record["view"].get("external_id") == external:
                return record
        raise _ApiError("not_found")

    def make_view(self, spec: Any, *, view_id: str | None = None,
                  root_id: str | None = None, previous: str | None = None) -> dict[str, Any]:
        if not isinstance(spec, dict) or spec.get("type") not in ("modal", "home"):
            raise _ApiError("invalid_arguments")
        view_id = view_id or self.next_id("V")
        return {
            "id": view_id, "team_id": TEAM_ID, "type": spec["type"],
            "blocks": spec.get("blocks", []), "private_metadata": spec.get("private_metadata", ""),
            "callback_id": spec.get("callback_id", ""), "state": {"values": {}},
            "hash": f"{int(time.time())}.{secrets.token_hex(4)}", "title": spec.get("title"),
            "clear_on_close": bool(spec.get("clear_on_close", False)),
            "notify_on_close": bool(spec.get("notify_on_close", False)),
            "close": spec.get("close"), "submit": spec.get("submit"),
            "previous_view_id": previous, "root_view_id": root_id or view_id,
            "app_id": API_APP_ID, "external_id": spec.get("external_id", ""),
            "app_installed_team_id": TEAM_ID, "bot_id": BOT_ID,
        }

    def open_view(self, view: dict[str, Any], user: str | None) -> None:
        self.views[view["id"]] = {"view": view, "user": user, "open": True, "errors": {}}
        self.stacks.setdefault(view["root_view_id"], []).append(view["id"])
        self.changed()

    def close_view(self, view_id: str, *, whole_stack: bool = False) -> None:
        record = self.views.get(view_id)
        if record is None:
            raise _ApiError("not_found")
        stack = self.stacks.get(record["view"]["root_view_id"], [])
        closing = list(stack) if whole_stack else [view_id]
        for closed in closing:
            self.views[closed]["open"] = False
            if closed in stack:
                stack.remove(closed)
        self.changed()

    def top_view_of(self, user: str | None) -> dict[str, Any] | None:
        """The modal on top of ``user``'s most recent open stack (``views.push`` target)."""
        for stack in reversed(list(self.stacks.values())):
            if stack and (user is None or self.views[stack[-1]]["user"] in (user, None)):
                return self.views[stack[-1]]
        return None

    def ephemerals_by_user(self) -> dict[str, list[dict[str, Any]]]:
        by_user: dict[str, list[dict[str, Any]]] = {}
        for message in self.ephemerals:
            by_user.setdefault(message["recipient"], []).append(copy.deepcopy(message))
        return by_user

    def state(self) -> dict[str, Any]:
        """Everything, as JSON-ready dicts, for ``/_local/state`` and the accessors."""
        return {
            "version": self.version,
            "team": {"id": TEAM_ID, "domain": TEAM_DOMAIN},
            "bot": {"user_id": BOT_USER_ID, "bot_id": BOT_ID, "name": BOT_NAME},
            "users": [{"id": uid, "name": name} for uid, name in self.users.items()],
            "usergroups": copy.deepcopy(list(self.usergroups.values())),
            "channels": {
                cid: dict(copy.deepcopy(info),
                          messages=[self.local_message(cid, m) for m in self.top[cid]])
                for cid, info in self.channels.items()
            },
            "ephemerals": self.ephemerals_by_user(),
            "views": [
                dict(copy.deepcopy(r["view"]), user=r["user"], errors=dict(r["errors"]))
                for r in self.views.values() if r["open"]
            ],
            "files": copy.deepcopy(list(self.files.values())),
            "refusals": copy.deepcopy(self.refusals),
        }


class _Methods:
    """Web API methods: each takes the request's params and returns the reply minus ``ok``."""

    def __init__(self, ws: _Workspace, bot_token: str, rules: StrictRules,
                 trigger_ttl_s: float) -> None:
        self.ws = ws
        self.bot_token = bot_token
        self.rules = rules
        self.trigger_ttl_s = trigger_ttl_s

    def call(self, method: str, params: dict[str, Any], authorization: str) -> dict[str, Any]:
        token = authorization.removeprefix("Bearer ").strip() or str(params.get("token", ""))
        if not token:
            raise _ApiError("not_authed")
        if token != self.bot_token:
            raise _ApiError("invalid_auth")
        handler = getattr(self, method.replace(".", "_"), None)
        if handler is None:
            raise _ApiError("unknown_method")
        with self.ws.lock:
            return handler(params)

    # --------------------------------------------------------------- auth / chat
    def auth_test(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"url": f"https://{TEAM_DOMAIN}.slack.com/", "team": TEAM_DOMAIN,
                "user": BOT_NAME, "team_id": TEAM_ID, "user_id": BOT_USER_ID,
                "bot_id": BOT_ID, "is_enterprise_install": False}

    def chat_postMessage(self, params: dict[str, Any]) -> dict[str, Any]:
        _require(params, "channel")
        self.rules.check_message(params)
        message = self.ws.post(params["channel"], params)
        return {"channel": params["channel"], "ts": message["ts"],
                "message": self.ws.public(message)}

    def chat_update(self, params: dict[str, Any]) -> dict[str, Any]:
        _require(params, "channel", "ts")
        self.rules.check_message(params)
        message = self.ws.edit(params["channel"], params["ts"], params)
        return {"channel": params["channel"], "ts": message["ts"], "text": message["text"],
                "message": self.ws.public(message)}

    def chat_delete(self, params: dict[str, Any]) -> dict[str, Any]:
        _require(params, "channel", "ts")
        self.ws.delete(params["channel"], params["ts"])
        return {"channel": params["channel"], "ts": params["ts"]}

    def chat_postEphemeral(self, params: dict[str, Any]) -> dict[str, Any]:
        _require(params, "channel", "user")
        if (not _USER_ID.fullmatch(str(params["user"]))
                or (params["channel"], params["user"]) in self.ws.absent):
            raise _ApiError("user_not_in_channel")
        self.rules.check_message(params)
        message = self.ws.ephemeral(params["channel"], params["user"], params,
                                    "chat.postEphemeral")
        return {"message_ts": message["ts"]}

    def chat_getPermalink(self, params: dict[str, Any]) -> dict[str, Any]:
        _require(params, "channel", "message_ts")
        message = self.ws.find(params["channel"], params["message_ts"])
        link = f"{self.ws.base_url}/_local/archives/{params['channel']}/p"
        link += message["ts"].replace(".", "")
        if message.get("thread_ts", message["ts"]) != message["ts"]:
            link += f"?thread_ts={message['thread_ts']}&cid={params['channel']}"
        return {"channel": params["channel"], "permalink": link}

    # --------------------------------------------------------------------- views
    def views_open(self, params: dict[str, Any]) -> dict[str, Any]:
        _require(params, "trigger_id")
        self.rules.check_view(params.get("view"))
        view = self.ws.make_view(params.get("view"))
        external = view["external_id"]
        if external and any(r["open"] and r["view"]["external_id"] == external
                            for r in self.ws.views.values()):
            raise _ApiError("duplicate_external_id")
        self.ws.open_view(view, self._exchange(params["trigger_id"]))
        return {"view": copy.deepcopy(view)}

    def _exchange(self, trigger_id: str) -> str:
        """The user a trigger was issued for; a trigger opens one view, within the TTL.

        https://docs.slack.dev/reference/methods/views.open#errors
        """
        trigger = self.ws.triggers.get(trigger_id)
        if trigger is None:
            raise _ApiError("invalid_trigger_id")
        if trigger["used"]:
            raise _ApiError("exchanged_trigger_id")
        if time.monotonic() - trigger["issued"] > self.trigger_ttl_s:
            raise _ApiError("expired_trigger_id")
        trigger["used"] = True
        return trigger["user"]

    def views_push(self, params: dict[str, Any]) -> dict[str, Any]:
        _require(params, "trigger_id")
        self.rules.check_view(params.get("view"))
        user = self._exchange(params["trigger_id"])
        below = self.ws.top_view_of(user)
        if below is None:
            raise _ApiError("not_found")
        view = self.ws.make_view(params.get("view"), root_id=below["view"]["root_view_id"],
                                 previous=below["view"]["id"])
        self.ws.open_view(view, user or below["user"])
        return {"view": copy.deepcopy(view)}

    def views_update(self, params: dict[str, Any]) -> dict[str, Any]:
        self.rules.check_view(params.get("view"))
        record = self.ws.view_record(params)
        old = record["view"]
        if params.get("hash") and params["hash"] != old["hash"]:
            raise _ApiError("hash_conflict")
        record["view"] = self.ws.make_view(params.get("view"), view_id=old["id"],
                                           root_id=old["root_view_id"],
                                           previous=old["previous_view_id"])
        record["errors"] = {}
        self.ws.changed()
        return {"view": copy.deepcopy(record["view"])}

    # --------------------------------------------------------------------- files
    def files_getUploadURLExternal(self, params: dict[str, Any]) -> dict[str, Any]:
        _require(params, "filename", "length")
        file_id = self.ws.next_id("F")
        name = str(params["filename"])
        self.ws.files[file_id] = {
            "id": file_id, "created": int(time.time()), "timestamp": int(time.time()),
            "name": name, "title": name,
            "mimetype": mimetypes.guess_type(name)[0] or "application/octet-stream",
            "filetype": name.rsplit(".", 1)[-1] if "." in name else "binary",
            "user": BOT_USER_ID, "size": int(params["length"]), "is_public": True,
            "url_private": f"{self.ws.base_url}/_local/files/{file_id}",
            "url_private_download": f"{self.ws.base_url}/_local/files/{file_id}",
            "channels": [], "shares": {}, "uploaded": False, "completed": False,
        }
        return {"upload_url": f"{self.ws.base_url}/_local/upload/{file_id}",
                "file_id": file_id}

    def files_completeUploadExternal(self, params: dict[str, Any]) -> dict[str, Any]:
        listed = params.get("files")
        if not isinstance(listed, list) or not listed:
            raise _ApiError("invalid_arguments")
        done = []
        for item in listed:
            record = self.ws.files.get(item.get("id", ""))
            if record is None or not record["uploaded"]:
                raise _ApiError("file_not_found")
            record.update(completed=True, title=item.get("title") or record["name"])
            done.append(record)
        channel_id = params.get("channel_id") or params.get("channels", "").split(",")[0]
        if channel_id:
            self._share(channel_id, done, params)
        self.ws.changed()
        public = [{k: v for k, v in f.items() if k not in ("uploaded", "completed")}
                  for f in done]
        return {"files": copy.deepcopy(public)}

    def _share(self, channel_id: str, files: list[dict[str, Any]],
               params: dict[str, Any]) -> None:
        """Slack shares completed uploads as a bot message carrying the files."""
        shown = [{k: v for k, v in f.items() if k not in ("uploaded", "completed", "shares")}
                 for f in files]
        message = self.ws.post(channel_id, {"text": params.get("initial_comment") or "",
                                            "files": shown, "thread_ts": params.get("thread_ts")})
        share: dict[str, Any] = {"ts": message["ts"],
                                 "channel_name": self.ws.channel(channel_id)["name"]}
        if message.get("thread_ts"):
            share["thread_ts"] = message["thread_ts"]
        for record in files:
            record["channels"].append(channel_id)
            record["shares"].setdefault("public", {}).setdefault(channel_id, []).append(share)
            record["permalink"] = f"{self.ws.base_url}/_local/files/{record['id']}"

    # ------------------------------------------------------------ users / groups
    def users_info(self, params: dict[str, Any]) -> dict[str, Any]:
        _require(params, "user")
        return {"user": self.ws.user_object(params["user"])}

    def users_list(self, params: dict[str, Any]) -> dict[str, Any]:
        members = [self.ws.user_object(uid) for uid in [*self.ws.users, BOT_USER_ID]]
        return {"members": members, "cache_ts": int(time.time()),
                "response_metadata": {"next_cursor": ""}}

    def usergroups_list(self, params: dict[str, Any]) -> dict[str, Any]:
        groups = copy.deepcopy(list(self.ws.usergroups.values()))
        if not _flag(params.get("include_users")):
            for group in groups:
                group.pop("users")
        return {"usergroups": groups}

    def usergroups_users_list(self, params: dict[str, Any]) -> dict[str, Any]:
        _require(params, "usergroup")
        key = params["usergroup"]
        group = self.ws.usergroups.get(key) or next(
            (g for g in self.ws.usergroups.values() if g["handle"] == key), None)
        if group is None:
            raise _ApiError("no_such_subteam")
        return {"users": list(group["users"])}

    # ------------------------------------------------------------- conversations
    def conversations_info(self, params: dict[str, Any]) -> dict[str, Any]:
        _require(params, "channel")
        if params["channel"] not in self.ws.channels:
            raise _ApiError("channel_not_found")
        return {"channel": copy.deepcopy(self.ws.channels[params["channel"]])}

    def conversations_history(self, params: dict[str, Any]) -> dict[str, Any]:
        _require(params, "channel")
        if params["channel"] not in self.ws.channels:
            raise _ApiError("channel_not_found")
        newest_first = list(reversed(self.ws.top[params["channel"]]))
        return self._page(newest_first, params)

    def conversations_replies(self, params: dict[str, Any]) -> dict[str, Any]:
        _require(params, "channel", "ts")
        root = self.ws.thread_root(params["channel"], params["ts"])
        if root is None:
            raise _ApiError("thread_not_found")
        replies = self.ws.threads.get((params["channel"], root["ts"]), [])
        return self._page([root, *replies], params)

    def _page(self, messages: list[dict[str, Any]], params: dict[str, Any]) -> dict[str, Any]:
        """Cursor pagination: the cursor is the offset into the list, as a string."""
        start = int(params.get("cursor") or 0)
        limit = int(params.get("limit") or 100)
        page = messages[start:start + limit]
        more = start + limit < len(messages)
        return {"messages": [self.ws.public(m) for m in page], "has_more": more,
                "response_metadata": {"next_cursor": str(start + limit) if more else ""}}


class _Handler(BaseHTTPRequestHandler):
    """Routes one HTTP request to the Web API or to a ``/_local/`` endpoint."""

    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        _log.debug("localslack: " + format, *args)

    def do_GET(self) -> None:
        self._route()

    def do_POST(self) -> None:
        self._route()

    def _route(self) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        slack = self.server.localslack
        try:
            if url.path.startswith("/api/"):
                params = _parse_params(url.query, self.headers.get("Content-Type", ""), body)
                self._reply(*slack._api(url.path[5:], params, dict(self.headers.items())))
            else:
                self._reply(*slack._local(url.path, url.query, body))
        except (ValueError, TypeError) as exc:  # a malformed body or argument
            _log.warning("localslack: bad request to %s: %s", url.path, exc)
            self._reply(400, {"ok": False, "error": "invalid_arguments"}, {})

    def _reply(self, status: int, payload: Any, headers: dict[str, str]) -> None:
        if isinstance(payload, bytes):
            data = payload
        elif isinstance(payload, str):
            data = payload.encode()
        else:
            data = json.dumps(payload).encode()
        self.send_response(status)
        content_type = "application/json; charset=utf-8"
        if not isinstance(payload, dict | list):
            content_type = "text/plain; charset=utf-8"
        headers = {"Content-Type": content_type, **headers, "Content-Length": str(len(data))}
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the default 5 drops bursts of parallel calls into SYN retries
    localslack: LocalSlack


_Reply = tuple[int, Any, dict[str, str]]


class LocalSlack:
    """A Slack workspace on loopback that speaks the Web API (see the module docstring).

    Use it as a context manager: ``with LocalSlack() as slack:`` then
    ``WebClient(token="xoxb-local", base_url=slack.api_url)``.

    Its checks cannot be turned off; two allow-lists may be widened: ``link_hosts`` (hosts a
    link may point to, ``"*.example.com"`` for subdomains; default
    :data:`~bot.localslack.strict.DEFAULT_LINK_HOSTS`, and ``host`` always) and
    ``special_mentions`` (which of ``here``, ``channel``, ``everyone`` may be used; none by
    default). ``trigger_ttl_s`` is how long a trigger_id opens a view (Slack: 3 s).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        bot_token: str = "xoxb-local",
        users: dict[str, str] | None = None,
        usergroups: dict[str, list[str]] | None = None,
        channels: dict[str, str] | None = None,
        link_hosts: Iterable[str] | None = None,
        special_mentions: Iterable[str] = (),
        trigger_ttl_s: float = 3.0,
    ) -> None:
        self.host = host
        self.port = port
        self.bot_token = bot_token
        self._ws = _Workspace(DEFAULT_USERS if users is None else users, usergroups or {})
        for channel_id, name in (channels or {}).items():
            self._ws.channel(channel_id, name)
        hosts = frozenset(DEFAULT_LINK_HOSTS if link_hosts is None else link_hosts) | {host}
        self._rules = StrictRules(link_hosts=hosts, special_mentions=frozenset(special_mentions))
        self._methods = _Methods(self._ws, bot_token, self._rules, trigger_ttl_s)
        self._requests: list[RecordedRequest] = []
        self._faults = Faults()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # ----------------------------------------------------------------- lifecycle
    def start(self) -> LocalSlack:
        """Bind and serve in a background thread; returns self."""
        if self._server is not None:
            return self
        server = _Server((self.host, self.port), _Handler)
        server.localslack = self
        self.port = server.server_address[1]
        self._ws.base_url = self.url
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="localslack",
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port."""
        with self._ws.lock:
            server, self._server = self._server, None
            self._ws.lock.notify_all()  # wake long-polls: they end once _server is None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._thread = None

    def __enter__(self) -> LocalSlack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:PORT`` (the terminal client's ``slack`` URL)."""
        return f"http://{self.host}:{self.port}"

    @property
    def api_url(self) -> str:
        """The Web API base URL for ``WebClient(base_url=...)`` / ``SLACK_API_URL``."""
        return f"{self.url}/api/"

    # --------------------------------------------------------- tests: traffic
    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every request received, oldest first."""
        with self._ws.lock:
            return list(self._requests)

    def requests_for(self, method: str) -> list[RecordedRequest]:
        """The recorded requests for one Web API method (e.g. ``chat.postMessage``)."""
        return [r for r in self.requests if r.method == method]

    def fail_next(
        self,
        method: str,
        *,
        status: int | None = None,
        retry_after: int | None = 1,
        error: str | None = None,
        times: int = 1,
    ) -> None:
        """Make the next ``times`` calls of ``method`` (``"*"``: any Web API method) fail.

        Without ``status`` and ``error`` the answer is HTTP 429 with ``Retry-After``;
        ``status=500`` (or 503 …) answers a server error; ``error="..."`` alone answers
        HTTP 200 ``{"ok": false, "error": error}`` (``not_in_channel``, ``channel_not_found``,
        ``is_archived``, ``token_revoked``, ``expired_trigger_id``, ``user_not_in_channel`` …).
        ``method="_local.response"`` fails response_url posts: ``error`` alone answers HTTP 404
        with that text (``expired_url``, ``used_url``), as Slack's response_url does.
        """
        with self._ws.lock:
            self._faults.add(method, status=status, retry_after=retry_after, error=error,
                             times=times)

    def _record(self, method: str, params: dict[str, Any], status: int,
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

    def refusals(self) -> list[dict[str, Any]]:
        """Every error answered, oldest first: ``{n, method, status, error, messages, time}``
        (strict-check refusals carry ``messages`` with JSON pointers)."""
        return self._read(lambda: copy.deepcopy(self._ws.refusals))

    def leave(self, channel: str, user: str) -> None:
        """``user`` is no longer in ``channel``: ephemerals to them there answer
        ``user_not_in_channel``, as Slack does."""
        with self._ws.lock:
            self._ws.absent.add((channel, user))

    # --------------------------------------------------------- tests: state
    def _read(self, fn: Callable[[], T]) -> T:
        with self._ws.lock:
            return fn()

    def messages(self, channel: str = DEFAULT_CHANNEL) -> list[dict[str, Any]]:
        """Top-level messages of ``channel``, oldest first, each with ``replies``."""
        return self._read(lambda: [self._ws.local_message(channel, m)
                                   for m in self._ws.top.get(channel, [])])

    def ephemerals(self, user: str | None = None) -> list[dict[str, Any]]:
        """Ephemeral messages (``recipient`` is the user who sees them), oldest first."""
        return self._read(lambda: [copy.deepcopy(e) for e in self._ws.ephemerals
                                   if user is None or e["recipient"] == user])

    def views(self) -> list[dict[str, Any]]:
        """Open modals, each a Slack view plus ``user`` and ``errors``."""
        return self._read(lambda: self._ws.state()["views"])

    def files(self) -> list[dict[str, Any]]:
        """Uploaded files' metadata, each with its bytes under ``content``."""
        return self._read(lambda: [dict(copy.deepcopy(f), content=self._ws.file_bytes.get(i))
                                   for i, f in self._ws.files.items()])

    def state(self) -> dict[str, Any]:
        """The workspace as ``/_local/state`` returns it."""
        return self._read(self._ws.state)

    @property
    def version(self) -> int:
        """Increases on every change to the workspace."""
        return self._read(lambda: self._ws.version)

    def wait_for(self, predicate: Callable[[], T], timeout: float = 10) -> T:
        """Return ``predicate()``'s first truthy value, re-checking on every change.

        Raises ``TimeoutError`` when it stays falsy for ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while True:
            seen = self.version
            # Outside the lock: the predicate may itself call this server over HTTP.
            value = predicate()
            if value:
                return value
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"condition not met within {timeout} s")
            with self._ws.lock:
                if self._ws.version == seen:
                    self._ws.lock.wait(min(left, 0.1))

    def new_interaction(self, channel: str, user: str, message_ts: str | None = None,
                        *, thread_ts: str | None = None) -> dict[str, str]:
        """Issue a ``trigger_id`` (it opens one view within ``trigger_ttl_s``) and a
        ``response_url`` for a command or click by ``user``."""
        with self._ws.lock:
            token = secrets.token_urlsafe(12)
            self._ws.responses[token] = {"channel": channel, "user": user, "uses": 0,
                                         "message_ts": message_ts, "thread_ts": thread_ts}
            trigger_id = new_trigger_id()
            self._ws.triggers[trigger_id] = {"user": user, "issued": time.monotonic(),
                                             "used": False}
        return {"trigger_id": trigger_id, "response_url": f"{self.url}/_local/response/{token}"}

    # ------------------------------------------------------------ HTTP: Web API
    def _api(self, method: str, params: dict[str, Any], headers: dict[str, str]) -> _Reply:
        with self._ws.lock:
            fault = self._faults.take(method)
        if fault is not None:
            answer = fault.api_reply()
            self._record(method, params, fault.status, headers, answer[1]["error"])
            return answer
        messages: tuple[str, ...] = ()
        try:
            reply: dict[str, Any] = {"ok": True, **self._methods.call(
                method, params, headers.get("Authorization", ""))}
        except _ApiError as exc:
            reply = {"ok": False, "error": exc.error}
        except Refusal as exc:
            reply, messages = exc.reply(), tuple(exc.messages)
        self._record(method, params, 200, headers, reply.get("error"), messages)
        return 200, reply, {}

    # ------------------------------------------------------------ HTTP: /_local
    def _local(self, path: str, query: str, body: bytes) -> _Reply:
        parts = path.strip("/").split("/")
        if parts[:1] != ["_local"] or len(parts) < 2:
            return 404, "not_found", {}
        route, rest = parts[1], "/".join(parts[2:])
        if route == "state":
            return 200, self._long_poll(dict(parse_qsl(query))), {}
        if route == "files":
            return self._serve_file(rest)
        if route == "upload":
            return self._upload(rest, body)
        data = json.loads(body) if body.strip()[:1] in (b"{", b"[") else _form_payload(body)
        if route == "response":
            return self._respond(rest, data, ack="ack" in dict(parse_qsl(query)))
        if route == "interaction":
            return 200, self.new_interaction(data.get("channel", DEFAULT_CHANNEL),
                                             data.get("user", ""), data.get("message_ts"),
                                             thread_ts=data.get("thread_ts")), {}
        if route == "view_response":
            return self._view_response(data.get("view_id", ""), data.get("response"))
        return 404, "not_found", {}

    def _long_poll(self, query: dict[str, str]) -> dict[str, Any]:
        since = int(query.get("since", -1))
        wait = min(float(query.get("wait", 0)), 30.0)
        deadline = time.monotonic() + wait
        with self._ws.lock:
            while self._ws.version <= since and self._server is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return {"version": self._ws.version, "changed": False}
                self._ws.lock.wait(left)
            return dict(self._ws.state(), changed=True)

    def _serve_file(self, file_id: str) -> _Reply:
        with self._ws.lock:
            data = self._ws.file_bytes.get(file_id)
            meta = self._ws.files.get(file_id, {})
        if data is None:
            return 404, "file_not_found", {}
        return 200, data, {"Content-Type": meta.get("mimetype", "application/octet-stream")}

    def _upload(self, file_id: str, body: bytes) -> _Reply:
        with self._ws.lock:
            record = self._ws.files.get(file_id)
            if record is not None:
                self._ws.file_bytes[file_id] = body
                record.update(uploaded=True, size=len(body))
                self._ws.changed()
        status = 200 if record is not None else 404
        self._record("_local.upload", {"file_id": file_id, "length": len(body)}, status, {},
                     None if record else "invalid_upload_url")
        return (200, f"OK - {len(body)}", {}) if record else (404, "invalid_upload_url", {})

    def _respond(self, token: str, body: dict[str, Any], *, ack: bool) -> _Reply:
        """A ``response_url`` post (or a slash-command ack body the client forwards).

        https://api.slack.com/interactivity/handling#message_responses
        """
        with self._ws.lock:
            fault = self._faults.take("_local.response")
        headers: dict[str, str] = {}
        if fault is not None:
            (status, answer, headers), messages = fault.response_url_reply(), ()
        else:
            status, answer, messages = self._response_answer(token, body, ack=ack)
        error = None if status == 200 else answer
        self._record("_local.response", dict(body, token=token), status, {}, error, messages)
        return status, answer, headers

    def _response_answer(self, token: str, body: dict[str, Any],
                         *, ack: bool) -> tuple[int, str, tuple[str, ...]]:
        """Status, text body and strict-check messages of a ``response_url`` post."""
        with self._ws.lock:
            target = self._ws.responses.get(token)
            if target is None:
                return 404, "invalid_token", ()
            if not ack and target["uses"] >= RESPONSE_URL_USES:
                return 404, "used_url", ()
            try:
                self._rules.check_message(_decode_json_fields(dict(body)))
            except Refusal as exc:
                return 400, exc.error, tuple(exc.messages)
            if not ack:
                target["uses"] += 1
            try:
                self._apply_response(target, body)
            except _ApiError as exc:
                return 400, exc.error, ()
        return 200, "ok", ()

    def _apply_response(self, target: dict[str, Any], body: dict[str, Any]) -> None:
        ws, original = self._ws, target.get("message_ts")
        ephemeral = ws.find_ephemeral(original) if original else None
        if _flag(body.get("delete_original")) and original:
            if ephemeral is not None:
                ws.ephemerals.remove(ephemeral)
                ws.changed()
            else:
                ws.delete(target["channel"], original)
            return
        if _flag(body.get("replace_original")) and original:
            if ephemeral is not None:
                ephemeral.update(text=body.get("text", ""), blocks=body.get("blocks", []))
                ephemeral["replaced"] += 1
                ws.changed()
            else:
                ws.edit(target["channel"], original, {"text": body.get("text", ""),
                                                      "blocks": body.get("blocks", [])})
            return
        thread_ts = body.get("thread_ts") or target.get("thread_ts")
        params = dict(_decode_json_fields(dict(body)), thread_ts=thread_ts)
        if body.get("response_type") == "in_channel":
            ws.post(target["channel"], params)
        else:
            ws.ephemeral(target["channel"], target["user"], params, "response_url")

    def _view_response(self, view_id: str, response: dict[str, Any] | None) -> _Reply:
        """Apply a ``view_submission`` ack to the modal stack as Slack would.

        https://api.slack.com/surfaces/modals#interactions
        """
        action = (response or {}).get("response_action")
        if action in ("update", "push"):
            try:
                self._rules.check_view(response.get("view"))
            except Refusal as exc:
                self._record("_local.view_response", {"view_id": view_id, **response}, 400, {},
                             exc.error, tuple(exc.messages))
                return 400, exc.reply(), {}
        ws = self._ws
        with ws.lock:
            record = ws.views.get(view_id)
            if record is None:
                return 404, "not_found", {}
            try:
                if action == "errors":
                    record["errors"] = dict(response.get("errors") or {})
                    ws.changed()
                elif action == "update":
                    old = record["view"]
                    record["view"] = ws.make_view(response.get("view"), view_id=old["id"],
                                                  root_id=old["root_view_id"],
                                                  previous=old["previous_view_id"])
                    record["errors"] = {}
                    ws.changed()
                elif action == "push":
                    view = ws.make_view(response.get("view"), root_id=record["view"][
                        "root_view_id"], previous=view_id)
                    ws.open_view(view, record["user"])
                else:
                    ws.close_view(view_id, whole_stack=action == "clear")
            except _ApiError as exc:
                return 400, exc.error, {}
        return 200, {"ok": True}, {}


def _form_payload(body: bytes) -> dict[str, Any]:
    """A form body, with Slack's ``payload=<json>`` convention unwrapped."""
    form = dict(parse_qsl(body.decode(), keep_blank_values=True))
    return json.loads(form["payload"]) if "payload" in form else form


def main(argv: list[str] | None = None) -> None:
    """``python -m bot.localslack.server --port 3001``: serve until interrupted."""
    parser = argparse.ArgumentParser(description="Serve a local Slack Web API stand-in.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3001)
    parser.add_argument("--bot-token", default="xoxb-local")
    args = parser.parse_args(argv)
    with LocalSlack(args.host, args.port, bot_token=args.bot_token) as slack:
        print(f"local Slack Web API at {slack.api_url} (state: {slack.url}/_local/state)",
              flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()
