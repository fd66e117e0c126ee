"""The Web API methods trainbot calls, answered with Slack's response shapes.

:class:`Methods` checks the token, routes ``chat.postMessage`` to ``chat_postMessage`` and so
on, runs :class:`~bot.localslack.strict.StrictRules` on what it is asked to show, and applies
the call to the :class:`~bot.localslack.workspace.Workspace` under its lock. A failure raises
:class:`~bot.localslack.workspace.ApiError` (or :class:`~bot.localslack.strict.Refusal`).
"""

from __future__ import annotations

import copy
import re
import time
from typing import Any

from bot.localslack.files import check_scope, new_file, public_file, share_file
from bot.localslack.params import flag
from bot.localslack.signing import TEAM_DOMAIN, TEAM_ID
from bot.localslack.strict import StrictRules
from bot.localslack.workspace import BOT_ID, BOT_NAME, BOT_USER_ID, ApiError, Workspace

__all__ = ["Methods"]

_USER_ID = re.compile(r"[UW][A-Z0-9]+")


def _require(params: dict[str, Any], *names: str) -> None:
    for name in names:
        if params.get(name) in (None, ""):
            raise ApiError(f"missing_{name}" if name != "channel" else "channel_not_found")


class Methods:
    """Web API methods: each takes the request's params and returns the reply minus ``ok``."""

    def __init__(self, ws: Workspace, bot_token: str, rules: StrictRules,
                 trigger_ttl_s: float, scopes: frozenset[str]) -> None:
        self.ws = ws
        self.bot_token = bot_token
        self.scopes = scopes
        self.rules = rules
        self.trigger_ttl_s = trigger_ttl_s

    def call(self, method: str, params: dict[str, Any], authorization: str) -> dict[str, Any]:
        token = authorization.removeprefix("Bearer ").strip() or str(params.get("token", ""))
        if not token:
            raise ApiError("not_authed")
        if token != self.bot_token:
            raise ApiError("invalid_auth")
        handler = getattr(self, method.replace(".", "_"), None)
        if handler is None:
            raise ApiError("unknown_method")
        check_scope(method, self.scopes)
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
            raise ApiError("user_not_in_channel")
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
            raise ApiError("duplicate_external_id")
        self.ws.open_view(view, self._exchange(params["trigger_id"]))
        return {"view": copy.deepcopy(view)}

    def _exchange(self, trigger_id: str) -> str:
        """The user a trigger was issued for; a trigger opens one view, within the TTL.

        https://docs.slack.dev/reference/methods/views.open#errors
        """
        trigger = self.ws.triggers.get(trigger_id)
        if trigger is None:
            raise ApiError("invalid_trigger_id")
        if trigger["used"]:
            raise ApiError("exchanged_trigger_id")
        if time.monotonic() - trigger["issued"] > self.trigger_ttl_s:
            raise ApiError("expired_trigger_id")
        trigger["used"] = True
        return trigger["user"]

    def views_push(self, params: dict[str, Any]) -> dict[str, Any]:
        _require(params, "trigger_id")
        self.rules.check_view(params.get("view"))
        user = self._exchange(params["trigger_id"])
        below = self.ws.top_view_of(user)
        if below is None:
            raise ApiError("not_found")
        view = self.ws.make_view(params.get("view"), root_id=below["view"]["root_view_id"],
                                 previous=below["view"]["id"])
        self.ws.open_view(view, user or below["user"])
        return {"view": copy.deepcopy(view)}

    def views_update(self, params: dict[str, Any]) -> dict[str, Any]:
        self.rules.check_view(params.get("view"))
        record = self.ws.view_record(params)
        old = record["view"]
        if params.get("hash") and params["hash"] != old["hash"]:
            raise ApiError("hash_conflict")
        record["view"] = self.ws.make_view(params.get("view"), view_id=old["id"],
                                           root_id=old["root_view_id"],
                                           previous=old["previous_view_id"])
        record["errors"] = {}
        self.ws.changed()
        return {"view": copy.deepcopy(record["view"])}

    # --------------------------------------------------------------------- files
    def files_info(self, params: dict[str, Any]) -> dict[str, Any]:
        """https://docs.slack.dev/reference/methods/files.info: the file object, its comments
        (none here) and a cursor; ``file_not_found`` / ``file_deleted`` otherwise."""
        if not params.get("file"):
            raise ApiError("invalid_arguments",
                           response_metadata={"messages": ["[ERROR] missing required field: file"]})
        record = self.ws.files.get(str(params["file"]))
        if record is None or not record["completed"]:
            raise ApiError("file_not_found")
        if record["deleted"]:
            raise ApiError("file_deleted")
        return {"file": public_file(record), "comments": [],
                "response_metadata": {"next_cursor": ""}}

    def files_getUploadURLExternal(self, params: dict[str, Any]) -> dict[str, Any]:
        _require(params, "filename", "length")
        record = new_file(self.ws, user=BOT_USER_ID, name=str(params["filename"]),
                          size=int(params["length"]))
        return {"upload_url": f"{self.ws.base_url}/_local/upload/{record['id']}",
                "file_id": record["id"]}

    def files_completeUploadExternal(self, params: dict[str, Any]) -> dict[str, Any]:
        listed = params.get("files")
        if not isinstance(listed, list) or not listed:
            raise ApiError("invalid_arguments")
        done = []
        for item in listed:
            record = self.ws.files.get(item.get("id", ""))
            if record is None or not record["uploaded"]:
                raise ApiError("file_not_found")
            record.update(completed=True, title=item.get("title") or record["name"])
            done.append(record)
        channel_id = params.get("channel_id") or params.get("channels", "").split(",")[0]
        if channel_id:
            self._share(channel_id, done, params)
        self.ws.changed()
        return {"files": [public_file(f) for f in done]}

    def _share(self, channel_id: str, files: list[dict[str, Any]],
               params: dict[str, Any]) -> None:
        """Slack shares completed uploads as a bot message carrying the files."""
        shown = [{k: v for k, v in public_file(f).items() if k != "shares"} for f in files]
        message = self.ws.post(channel_id, {"text": params.get("initial_comment") or "",
                                            "files": shown, "thread_ts": params.get("thread_ts")})
        for record in files:
            share_file(self.ws, record, channel_id, message, by=BOT_USER_ID)

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
        if not flag(params.get("include_users")):
            for group in groups:
                group.pop("users")
        return {"usergroups": groups}

    def usergroups_users_list(self, params: dict[str, Any]) -> dict[str, Any]:
        _require(params, "usergroup")
        key = params["usergroup"]
        group = self.ws.usergroups.get(key) or next(
            (g for g in self.ws.usergroups.values() if g["handle"] == key), None)
        if group is None:
            raise ApiError("no_such_subteam")
        return {"users": list(group["users"])}

    # ------------------------------------------------------------- conversations
    def conversations_info(self, params: dict[str, Any]) -> dict[str, Any]:
        _require(params, "channel")
        if params["channel"] not in self.ws.channels:
            raise ApiError("channel_not_found")
        return {"channel": copy.deepcopy(self.ws.channels[params["channel"]])}

    def conversations_history(self, params: dict[str, Any]) -> dict[str, Any]:
        _require(params, "channel")
        if params["channel"] not in self.ws.channels:
            raise ApiError("channel_not_found")
        newest_first = list(reversed(self.ws.top[params["channel"]]))
        return self._page(newest_first, params)

    def conversations_replies(self, params: dict[str, Any]) -> dict[str, Any]:
        _require(params, "channel", "ts")
        root = self.ws.thread_root(params["channel"], params["ts"])
        if root is None:
            raise ApiError("thread_not_found")
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
