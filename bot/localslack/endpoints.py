"""The ``/_local/`` endpoints: what Slack does outside the Web API, for the client and tests.

- ``GET  /_local/state?since=N&wait=S`` the whole workspace as JSON with a ``version`` counter;
  with ``wait`` it long-polls until the version passes ``since``.
- ``POST /_local/upload/<id>`` is the ``upload_url`` that ``files.getUploadURLExternal``
  hands out (a file's bytes are at its ``url_private``, for the bot token only:
  :mod:`bot.localslack.files`).
- ``POST /_local/user_file?user=U…&filename=NAME[&channel=C…][&title=…]`` a user uploads
  the body as a file: shared in ``channel`` (a ``file_share`` message), or nowhere, as a
  modal's ``file_input`` does → ``{"ok": true, "file": {…}}``.
- ``POST /_local/interaction`` registers a click or command: ``{channel, user, message_ts?}`` →
  ``{trigger_id, response_url}``.
- ``POST /_local/response/<token>`` a ``response_url`` (at most 5 uses, like Slack's).
- ``POST /_local/view_response`` applies a ``view_submission`` ack (close, update, push,
  clear or errors) to the modal stack.
"""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import parse_qsl

from bot.localslack.faults import Faults, Reply
from bot.localslack.files import user_file
from bot.localslack.params import decode_json_fields, flag, form_payload
from bot.localslack.strict import Refusal, StrictRules
from bot.localslack.traffic import Traffic
from bot.localslack.workspace import DEFAULT_CHANNEL, ApiError, Workspace

__all__ = ["RESPONSE_URL_USES", "LocalEndpoints"]

RESPONSE_URL_USES = 5  # https://api.slack.com/interactivity/handling#message_responses


class LocalEndpoints:
    """Answers ``/_local/…`` requests against the workspace; records what it refuses."""

    def __init__(self, ws: Workspace, rules: StrictRules, faults: Faults,
                 traffic: Traffic) -> None:
        self._ws = ws
        self._rules = rules
        self._faults = faults
        self._traffic = traffic

    def route(self, path: str, query: str, body: bytes) -> Reply:
        parts = path.strip("/").split("/")
        if parts[:1] != ["_local"] or len(parts) < 2:
            return 404, "not_found", {}
        route, rest = parts[1], "/".join(parts[2:])
        if route == "state":
            return 200, self._long_poll(dict(parse_qsl(query))), {}
        if route == "upload":
            return self._upload(rest, body)
        if route == "user_file":
            return self._user_file(dict(parse_qsl(query)), body)
        data = json.loads(body) if body.strip()[:1] in (b"{", b"[") else form_payload(body)
        if route == "response":
            return self._respond(rest, data, ack="ack" in dict(parse_qsl(query)))
        if route == "interaction":
            with self._ws.lock:
                ids = self._ws.new_interaction(data.get("channel", DEFAULT_CHANNEL),
                                               data.get("user", ""), data.get("message_ts"),
                                               data.get("thread_ts"))
            return 200, ids, {}
        if route == "view_response":
            return self._view_response(data.get("view_id", ""), data.get("response"))
        return 404, "not_found", {}

    def _long_poll(self, query: dict[str, str]) -> dict[str, Any]:
        since = int(query.get("since", -1))
        wait = min(float(query.get("wait", 0)), 30.0)
        deadline = time.monotonic() + wait
        with self._ws.lock:
            while self._ws.version <= since and self._ws.serving:
                left = deadline - time.monotonic()
                if left <= 0:
                    return {"version": self._ws.version, "changed": False}
                self._ws.lock.wait(left)
            return dict(self._ws.state(), changed=True)

    def _user_file(self, query: dict[str, str], body: bytes) -> Reply:
        with self._ws.lock:
            try:
                file = user_file(self._ws, query.get("user", ""), query.get("filename", ""),
                                 body, channel=query.get("channel"), title=query.get("title"),
                                 comment=query.get("comment", ""))
            except ApiError as exc:
                self._traffic.record("_local.user_file", query, 400, {}, exc.error)
                return 400, {"ok": False, "error": exc.error}, {}
        self._traffic.record("_local.user_file", dict(query, length=len(body)), 200, {})
        return 200, {"ok": True, "file": file}, {}

    def _upload(self, file_id: str, body: bytes) -> Reply:
        with self._ws.lock:
            record = self._ws.files.get(file_id)
            if record is not None:
                self._ws.file_bytes[file_id] = body
                record.update(uploaded=True, size=len(body))
                self._ws.changed()
        status = 200 if record is not None else 404
        self._traffic.record("_local.upload", {"file_id": file_id, "length": len(body)},
                             status, {}, None if record else "invalid_upload_url")
        return (200, f"OK - {len(body)}", {}) if record else (404, "invalid_upload_url", {})

    def _respond(self, token: str, body: dict[str, Any], *, ack: bool) -> Reply:
        """A ``response_url`` post (or a slash-command ack body the client forwards).

        https://api.slack.com/interactivity/handling#message_responses
        """
        with self._ws.lock:
            fault = self._faults.take("_local.response")
        headers: dict[str, str] = {}
        messages: tuple[str, ...] = ()
        if fault is not None:
            status, answer, headers = fault.response_url_reply()
        else:
            status, answer, messages = self._response_answer(token, body, ack=ack)
        error = None if status == 200 else answer
        self._traffic.record("_local.response", dict(body, token=token), status, {}, error,
                             messages)
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
                self._rules.check_message(decode_json_fields(dict(body)))
            except Refusal as exc:
                return 400, exc.error, tuple(exc.messages)
            if not ack:
                target["uses"] += 1
            try:
                self._apply_response(target, body)
            except ApiError as exc:
                return 400, exc.error, ()
        return 200, "ok", ()

    def _apply_response(self, target: dict[str, Any], body: dict[str, Any]) -> None:
        ws, original = self._ws, target.get("message_ts")
        ephemeral = ws.find_ephemeral(original) if original else None
        if flag(body.get("delete_original")) and original:
            if ephemeral is not None:
                ws.ephemerals.remove(ephemeral)
                ws.changed()
            else:
                ws.delete(target["channel"], original)
            return
        if flag(body.get("replace_original")) and original:
            if ephemeral is not None:
                ephemeral.update(text=body.get("text", ""), blocks=body.get("blocks", []))
                ephemeral["replaced"] += 1
                ws.changed()
            else:
                ws.edit(target["channel"], original, {"text": body.get("text", ""),
                                                      "blocks": body.get("blocks", [])})
            return
        thread_ts = body.get("thread_ts") or target.get("thread_ts")
        params = dict(decode_json_fields(dict(body)), thread_ts=thread_ts)
        if body.get("response_type") == "in_channel":
            ws.post(target["channel"], params)
        else:
            ws.ephemeral(target["channel"], target["user"], params, "response_url")

    def _view_response(self, view_id: str, response: dict[str, Any] | None) -> Reply:
        """Apply a ``view_submission`` ack to the modal stack as Slack would.

        https://api.slack.com/surfaces/modals#interactions
        """
        ack = response or {}
        action = ack.get("response_action")
        if action in ("update", "push"):
            try:
                self._rules.check_view(ack.get("view"))
            except Refusal as exc:
                self._traffic.record("_local.view_response", {"view_id": view_id, **ack}, 400,
                                     {}, exc.error, tuple(exc.messages))
                return 400, exc.reply(), {}
        ws = self._ws
        with ws.lock:
            record = ws.views.get(view_id)
            if record is None:
                return 404, "not_found", {}
            try:
                if action == "errors":
                    record["errors"] = dict(ack.get("errors") or {})
                    ws.changed()
                elif action == "update":
                    old = record["view"]
                    record["view"] = ws.make_view(ack.get("view"), view_id=old["id"],
                                                  root_id=old["root_view_id"],
                                                  previous=old["previous_view_id"])
                    record["errors"] = {}
                    ws.changed()
                elif action == "push":
                    view = ws.make_view(ack.get("view"), root_id=record["view"][
                        "root_view_id"], previous=view_id)
                    ws.open_view(view, record["user"])
                else:
                    ws.close_view(view_id, whole_stack=action == "clear")
            except ApiError as exc:
                return 400, exc.error, {}
        return 200, {"ok": True}, {}
