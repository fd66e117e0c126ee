"""The workspace LocalSlack keeps in memory: channels, threads, ephemerals, modals, files.

:class:`Workspace` holds the state and the operations the Web API methods and the ``/_local/``
endpoints share; it answers Slack's shapes (messages, views, users) and raises
:class:`ApiError` with Slack's error codes. It is not thread-safe by itself: callers hold
``Workspace.lock``, a condition that is notified on every change. Standard library only.
"""

from __future__ import annotations

import copy
import itertools
import secrets
import threading
import time
from typing import Any

from bot.localslack.params import flag
from bot.localslack.signing import API_APP_ID, TEAM_DOMAIN, TEAM_ID, new_trigger_id

__all__ = [
    "BOT_ID",
    "BOT_NAME",
    "BOT_USER_ID",
    "DEFAULT_CHANNEL",
    "DEFAULT_USERS",
    "ApiError",
    "Workspace",
]

BOT_USER_ID = "U0BOT"
BOT_ID = "B0LOCAL"
BOT_NAME = "trainbot"
DEFAULT_CHANNEL = "C0LOCAL"
DEFAULT_USERS = {"U0LOCAL1": "you", "U0LOCAL2": "approver", "U0LOCAL3": "oncall"}
_BOT_PROFILE = {"id": BOT_ID, "app_id": API_APP_ID, "name": BOT_NAME, "team_id": TEAM_ID}


class ApiError(Exception):
    """A Web API failure answered as ``{"ok": false, "error": code}``; ``extra`` keys go into
    the answer too (``missing_scope`` says what was ``needed`` and ``provided``)."""

    def __init__(self, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.error = error
        self.extra = extra


class Workspace:
    """The in-memory workspace and its operations. Callers hold ``lock``.

    ``base_url`` is where the stand-in serves (links, upload and response URLs point there);
    ``serving`` is false once it stops, which ends long-polls.
    """

    def __init__(self, users: dict[str, str], usergroups: dict[str, list[str]], *,
                 base_url: str, channels: dict[str, str] | None = None) -> None:
        self.lock = threading.Condition(threading.RLock())
        self.version = 0
        self.base_url = base_url
        self.serving = False
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
        for channel_id, name in (channels or {}).items():
            self.channel(channel_id, name)

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
        raise ApiError("message_not_found")

    def new_message(self, params: dict[str, Any]) -> dict[str, Any]:
        if not any(params.get(k) for k in ("text", "blocks", "attachments", "files")):
            raise ApiError("no_text")
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
            if flag(params.get("reply_broadcast")):
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
        except ApiError:
            return None
        parent_ts = message.get("thread_ts", message["ts"])
        if parent_ts == message["ts"]:
            return message
        try:
            return self.find(channel_id, parent_ts)
        except ApiError:
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
            raise ApiError("user_not_found")
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
        raise ApiError("not_found")

    def make_view(self, spec: Any, *, view_id: str | None = None,
                  root_id: str | None = None, previous: str | None = None) -> dict[str, Any]:
        if not isinstance(spec, dict) or spec.get("type") not in ("modal", "home"):
            raise ApiError("invalid_arguments")
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
            raise ApiError("not_found")
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

    def new_interaction(self, channel: str, user: str, message_ts: str | None,
                        thread_ts: str | None) -> dict[str, str]:
        """A ``trigger_id`` and a ``response_url`` for a command or click by ``user``."""
        token = secrets.token_urlsafe(12)
        self.responses[token] = {"channel": channel, "user": user, "uses": 0,
                                 "message_ts": message_ts, "thread_ts": thread_ts}
        trigger_id = new_trigger_id()
        self.triggers[trigger_id] = {"user": user, "issued": time.monotonic(), "used": False}
        return {"trigger_id": trigger_id,
                "response_url": f"{self.base_url}/_local/response/{token}"}

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
