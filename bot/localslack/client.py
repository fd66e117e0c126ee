"""The terminal client a person uses with ``make run``: Slack in a line-oriented REPL.

It plays the Slack client and Slack's delivery side at once: what you type becomes a signed
slash command, button click (``block_actions``) or modal submission (``view_submission``)
posted to the bot's HTTP endpoint, and a background thread long-polls the local Slack
stand-in (:mod:`bot.localslack.server`) and prints the channel as it changes. No curses: it
works piped, in scripts and under tmux.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

from bot.localslack.signing import (
    block_actions_body,
    sign,
    slash_command_body,
    view_submission_body,
)

if TYPE_CHECKING:
    from bot.localslack.server import LocalSlack

__all__ = ["Button", "ButtonNumbers", "build_view_values", "render_message", "render_refusal",
           "render_view", "run_client"]

HISTORY_SHOWN = 10
RULE = "──"
HELP = """\
commands:
  /train TEXT          send the slash command (e.g. /train start tabular-classification)
  /press N             click button [N]
  /thread N            show message #N with its thread
  /submit KEY=VALUE …  submit the open modal (KEY: an input's block_id or action_id)
  /cancel              close the open modal
  /as USER_ID          act as another user (e.g. an approver); /as alone: who am I
  /users               list users and user groups
  /channel [ID]        show or switch the channel
  /wait SECONDS        print what arrives for a while (handy in scripts)
  /help                this text
  /quit                leave"""


# ----------------------------------------------------------------------- rendering
@dataclass(frozen=True)
class Button:
    """A button as shown on screen, with what ``/press`` needs to click it."""

    number: int
    label: str
    action_id: str
    block_id: str | None
    value: str | None
    url: str | None
    channel: str | None
    message_ts: str | None
    ephemeral: bool = False
    view_id: str | None = None


class ButtonNumbers:
    """Stable numbers for buttons: the same button keeps its number across re-renders."""

    def __init__(self) -> None:
        self._numbers: dict[tuple[Any, ...], int] = {}
        self._buttons: dict[int, Button] = {}

    def assign(self, element: dict[str, Any], *, block_id: str | None, channel: str | None,
               message_ts: str | None, ephemeral: bool = False,
               view_id: str | None = None) -> int:
        """The number for this button, allocating the next free one on first sight."""
        key = (view_id or channel, message_ts, block_id, element.get("action_id"),
               element.get("value"), element.get("url"))
        number = self._numbers.setdefault(key, len(self._numbers) + 1)
        self._buttons[number] = Button(
            number=number, label=_text(element.get("text")), block_id=block_id,
            action_id=element.get("action_id") or "", value=element.get("value"),
            url=element.get("url"), channel=channel, message_ts=message_ts,
            ephemeral=ephemeral, view_id=view_id)
        return number

    def get(self, number: int) -> Button | None:
        return self._buttons.get(number)


def _text(obj: Any) -> str:
    """The text of a text object (``{"type": "mrkdwn", "text": ...}``) or a plain string."""
    if isinstance(obj, dict):
        return str(obj.get("text", ""))
    return "" if obj is None else str(obj)


def _plain(text: str, users: dict[str, str]) -> str:
    """Slack mrkdwn escapes and links, made readable in a terminal."""
    out, rest = [], text
    while "<" in rest and ">" in rest[rest.index("<"):]:
        start = rest.index("<")
        end = rest.index(">", start)
        out.append(rest[:start])
        out.append(_link(rest[start + 1:end], users))
        rest = rest[end + 1:]
    out.append(rest)
    return "".join(out).replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _link(inner: str, users: dict[str, str]) -> str:
    target, _, label = inner.partition("|")
    if target.startswith("@"):
        return "@" + (label or users.get(target[1:], target[1:]))
    if target.startswith("#"):
        return "#" + (label or target[1:])
    if target.startswith("!"):
        return label or "@" + target[1:].split("^")[0]
    return f"{label} ({target})" if label and label != target else target


def _button(element: dict[str, Any], numbers: ButtonNumbers, where: dict[str, Any]) -> str:
    number = numbers.assign(element, **where)
    label = _text(element.get("text"))
    return f"[{number}] {label} → {element['url']}" if element.get("url") else f"[{number}] {label}"


def _element(element: dict[str, Any], numbers: ButtonNumbers, where: dict[str, Any]) -> str:
    if element.get("type") == "button":
        return _button(element, numbers, where)
    options = [_text(o.get("text")) for o in _options(element)]
    kind = element.get("type", "element")
    return f"({kind}: {' | '.join(options)})" if options else f"({kind})"


def _options(element: dict[str, Any]) -> list[dict[str, Any]]:
    groups = element.get("option_groups") or []
    return list(element.get("options") or []) + [o for g in groups for o in g.get("options", [])]


def _rich_text(node: Any, users: dict[str, str]) -> str:
    if isinstance(node, list):
        return "".join(_rich_text(n, users) for n in node)
    if not isinstance(node, dict):
        return ""
    kind = node.get("type")
    if kind == "user":
        return "@" + users.get(node.get("user_id", ""), node.get("user_id", ""))
    if kind == "link":
        return node.get("text") or node.get("url", "")
    if "elements" in node:
        joined = _rich_text(node["elements"], users)
        return joined + ("\n" if kind in ("rich_text_section", "rich_text_preformatted") else "")
    return str(node.get("text", ""))


def _block(block: dict[str, Any], numbers: ButtonNumbers, where: dict[str, Any],
           users: dict[str, str]) -> list[str]:
    """One Block Kit block as terminal lines."""
    kind = block.get("type")
    where = dict(where, block_id=block.get("block_id"))
    if kind == "header":
        return [f"## {_text(block.get('text'))}"]
    if kind == "divider":
        return ["─" * 32]
    if kind == "section":
        lines = _plain(_text(block.get("text")), users).splitlines()
        lines += ["  • " + _plain(_text(f), users).replace("\n", " ")
                  for f in block.get("fields") or []]
        if isinstance(block.get("accessory"), dict) and block["accessory"].get("type") != "image":
            lines.append("  " + _element(block["accessory"], numbers, where))
        return lines
    if kind == "context":
        parts = [_plain(_text(e), users) if e.get("type") != "image" else e.get("alt_text", "")
                 for e in block.get("elements", [])]
        return ["  " + " · ".join(p for p in parts if p)]
    if kind == "actions":
        return ["  ".join(_element(e, numbers, where) for e in block.get("elements", []))]
    if kind == "image":
        return [f"[image: {block.get('alt_text', '')}] {block.get('image_url', '')}"]
    if kind == "rich_text":
        return _rich_text(block.get("elements", []), users).rstrip("\n").splitlines()
    if kind == "input":
        element = _element(block.get("element") or {}, numbers, where)
        return [f"{_text(block.get('label'))}: {element}"]
    return [f"[{kind} block]"]


def _header(msg: dict[str, Any], users: dict[str, str], number: int | None,
            note: str | None, viewer: str | None) -> str:
    name = ((msg.get("bot_profile") or {}).get("name") or msg.get("username")
            or users.get(msg.get("user", ""), msg.get("user", "?")))
    try:
        when = time.strftime("%H:%M:%S", time.localtime(float(msg.get("ts", "0"))))
    except ValueError:
        when = "?"
    flags = []
    if msg.get("edit_count") or msg.get("edited") or msg.get("replaced"):
        flags.append("edited")
    if "recipient" in msg:
        who = msg["recipient"]
        shown = "you" if viewer in (None, who) else f"{who} ({users.get(who, '?')})"
        flags.append(f"only visible to {shown}")
    if note:
        flags.append(note)
    prefix = f"#{number} " if number is not None else ""
    suffix = f" ({', '.join(flags)})" if flags else ""
    return f"{RULE} {prefix}{name} · {when}{suffix} {RULE}"


def render_message(
    msg: dict[str, Any],
    button_numbers: ButtonNumbers,
    *,
    number: int | None = None,
    users: dict[str, str] | None = None,
    channel: str | None = None,
    note: str | None = None,
    indent: str = "",
    viewer: str | None = None,
) -> str:
    """A message (Slack's shape, as ``/_local/state`` gives it) as readable terminal text.

    A ``── #N name · HH:MM:SS (edited) ──`` header, then its blocks (or its text when it has
    none) and its files. Buttons are numbered through ``button_numbers`` for ``/press``.
    An ephemeral (it has a ``recipient``) says who sees it, "you" when that is ``viewer``.
    """
    users = users or {}
    ephemeral = "recipient" in msg
    where = {"channel": msg.get("channel", channel), "message_ts": msg.get("ts"),
             "ephemeral": ephemeral}
    lines = [_header(msg, users, number, note, viewer)]
    if msg.get("blocks"):
        for block in msg["blocks"]:
            lines += _block(block, button_numbers, where, users)
    elif msg.get("text"):
        lines += _plain(msg["text"], users).splitlines()
    for file in msg.get("files") or []:
        lines.append(f"[file] {file.get('name')} ({file.get('size', '?')} bytes) "
                     f"{file.get('url_private', '')}")
    return "\n".join(indent + line for line in lines)


def _input_key(block: dict[str, Any]) -> str:
    return block.get("block_id") or (block.get("element") or {}).get("action_id") or "?"


def _describe_input(block: dict[str, Any]) -> str:
    element = block.get("element") or {}
    kind = element.get("type", "?")
    options = [str(o.get("value")) for o in _options(element)]
    details = [kind]
    if options:
        details.append("one of: " + ", ".join(options))
    initial = (element.get("initial_value") or _text((element.get("initial_option") or {})
                                                      .get("text")) or None)
    if initial:
        details.append(f"default: {initial}")
    if block.get("optional"):
        details.append("optional")
    return f"• {_text(block.get('label'))} [{_input_key(block)}] — {'; '.join(details)}"


def render_view(view: dict[str, Any], button_numbers: ButtonNumbers | None = None,
                *, users: dict[str, str] | None = None) -> str:
    """An open modal: title, its blocks, its inputs (with the keys ``/submit`` takes) and
    any inline errors the bot answered with."""
    numbers = button_numbers or ButtonNumbers()
    users = users or {}
    where = {"channel": None, "message_ts": None, "view_id": view.get("id")}
    submit = _text(view.get("submit")) or "Submit"
    lines = [f"┌─ modal: {_text(view.get('title'))} ({view.get('id')}) ─ [{submit}]"]
    keys = []
    for block in view.get("blocks", []):
        if block.get("type") == "input":
            keys.append(_input_key(block))
            lines.append("│ " + _describe_input(block))
            error = (view.get("errors") or {}).get(block.get("block_id"))
            if error:
                lines.append(f"│     ✗ {error}")
        else:
            lines += ["│ " + line for line in _block(block, numbers, where, users)]
    example = " ".join(f"{k}=…" for k in keys)
    lines.append(f"└─ /submit {example}   ·   /cancel")
    return "\n".join(lines)


def render_refusal(refusal: dict[str, Any]) -> str:
    """An error the stand-in answered the bot (an entry of ``/_local/state``'s ``refusals``):
    ``! Slack refused chat.postMessage: invalid_blocks — <message> [json-pointer:…]``, one
    line per further message. A Slack user never sees these; the developer should."""
    head = f"! Slack refused {refusal.get('method')}: {refusal.get('error')}"
    messages = refusal.get("messages") or []
    if not messages:
        return head
    return "\n".join([f"{head} — {messages[0]}", *(f"    {m}" for m in messages[1:])])


# ----------------------------------------------------------------- modal values
_VALUE_TYPES = ("plain_text_input", "number_input", "email_text_input", "url_text_input")
_ONE_OPTION = ("static_select", "external_select", "radio_buttons")
_MANY_OPTIONS = ("multi_static_select", "multi_external_select", "checkboxes")
_SELECTED = {"users_select": "selected_user", "conversations_select": "selected_conversation",
             "channels_select": "selected_channel", "datepicker": "selected_date",
             "timepicker": "selected_time"}


def _find_option(element: dict[str, Any], raw: str) -> dict[str, Any]:
    for option in _options(element):
        if raw in (option.get("value"), _text(option.get("text"))):
            return option
    choices = ", ".join(str(o.get("value")) for o in _options(element))
    raise ValueError(f"{raw!r} is not one of: {choices}")


def _element_state(element: dict[str, Any], raw: str | None) -> dict[str, Any]:
    """One input's entry in ``view.state.values``, as Slack reports it (initial values count)."""
    kind = element.get("type", "plain_text_input")
    state: dict[str, Any] = {"type": kind}
    if kind in _ONE_OPTION:
        option = _find_option(element, raw) if raw is not None else element.get("initial_option")
        state["selected_option"] = option
    elif kind in _MANY_OPTIONS:
        chosen = ([_find_option(element, r.strip()) for r in raw.split(",") if r.strip()]
                  if raw is not None else element.get("initial_options") or [])
        state["selected_options"] = chosen
    elif kind in _SELECTED:
        initial_key = _SELECTED[kind].replace("selected_", "initial_")
        state[_SELECTED[kind]] = raw if raw is not None else element.get(initial_key)
    elif kind == "multi_users_select":
        state["selected_users"] = raw.split(",") if raw else element.get("initial_users", [])
    else:
        state["value"] = raw if raw is not None else element.get("initial_value")
    return state


def build_view_values(view: dict[str, Any], assignments: dict[str, str]) -> dict[str, Any]:
    """``view.state.values`` for submitting ``view`` with ``assignments`` (key → text).

    A key names an input block by its ``block_id`` or its element's ``action_id``. Raises
    ``ValueError`` for a key no input has or a choice a select does not offer.
    """
    values: dict[str, Any] = {}
    used: set[str] = set()
    for block in view.get("blocks", []):
        if block.get("type") != "input":
            continue
        element = block.get("element") or {}
        action_id = element.get("action_id") or "action"
        block_id = block.get("block_id") or action_id
        # trainbot's forms name hyperparameter inputs "hp:<name>"; `/submit lr=0.1` means hp:lr.
        short = block_id.split(":", 1)[1] if ":" in block_id else block_id
        key = next((k for k in (block_id, action_id, short) if k in assignments), None)
        raw = assignments[key] if key is not None else None
        if key is not None:
            used.add(key)
        values.setdefault(block_id, {})[action_id] = _element_state(element, raw)
    unknown = sorted(set(assignments) - used)
    if unknown:
        raise ValueError(f"no input named {', '.join(unknown)}; inputs: {', '.join(values)}")
    return values


# ------------------------------------------------------------------------- HTTP
def _http(url: str, body: bytes | None = None, headers: dict[str, str] | None = None,
          timeout: float = 15) -> tuple[int, str]:
    """POST (or GET without a body) and return the status and body text, errors included."""
    request = urllib.request.Request(url, data=body, headers=headers or {},
                                     method="POST" if body is not None else "GET")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def _post_json(url: str, payload: dict[str, Any]) -> tuple[int, str]:
    return _http(url, json.dumps(payload).encode(), {"Content-Type": "application/json"})


def _json_or_none(text: str) -> dict[str, Any] | None:
    try:
        parsed = json.loads(text)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


def _slack_message(msg: dict[str, Any]) -> dict[str, Any]:
    """Drop the stand-in's bookkeeping keys: what Slack puts in an interaction payload."""
    return {k: v for k, v in msg.items() if k not in ("replies", "edit_count")}


# ---------------------------------------------------------------------- session
class _Session:
    """One person at the terminal: identity, what has been shown, and the commands."""

    def __init__(self, bot_url: str, base_url: str, secret: str, *, user_id: str,
                 user_name: str, channel_id: str, commands: tuple[str, ...],
                 output: IO[str]) -> None:
        self.bot_url, self.base_url, self.secret = bot_url, base_url.rstrip("/"), secret
        self.user_id, self.user_name, self.channel_id = user_id, user_name, channel_id
        # Everyone this person has acted as: their ephemerals still reach this terminal.
        self.identities = {user_id}
        self.commands, self.output = commands, output
        self.lock = threading.RLock()
        self.state: dict[str, Any] | None = None
        self.version = -1
        self.seen: dict[tuple[str, ...], str] = {}
        self.numbers: dict[tuple[str, str], int] = {}
        self.buttons = ButtonNumbers()
        self.refusals_shown = 0
        self.stopped = threading.Event()

    # -- output
    def emit(self, text: str) -> None:
        with self.lock:
            self.output.write(text + "\n")
            self.output.flush()

    @property
    def users(self) -> dict[str, str]:
        state = self.state or {}
        names = {u["id"]: u["name"] for u in state.get("users", [])}
        bot = state.get("bot") or {}
        if bot:
            names[bot["user_id"]] = bot["name"]
        return names

    def number(self, channel: str, ts: str) -> int:
        key = (channel, ts)
        if key not in self.numbers:
            self.numbers[key] = sum(1 for c, _ in self.numbers if c == channel) + 1
        return self.numbers[key]

    def render(self, msg: dict[str, Any], *, reply_to: int | None = None,
               note: str | None = None) -> str:
        if reply_to is not None:
            return render_message(msg, self.buttons, users=self.users, channel=self.channel_id,
                                  note=f"↳ reply to #{reply_to}" + (f", {note}" if note else ""),
                                  indent="    ")
        number = self.number(self.channel_id, msg["ts"]) if "recipient" not in msg else None
        return render_message(msg, self.buttons, number=number, users=self.users,
                              channel=self.channel_id, note=note, viewer=self.user_id)

    # -- state
    def refresh(self, wait: float = 0.0) -> None:
        """Fetch the workspace (long-polling up to ``wait`` s) and print what changed."""
        status, text = _http(f"{self.base_url}/_local/state?since={self.version}&wait={wait}",
                             timeout=wait + 10)
        if status != 200:
            raise ConnectionError(f"local Slack answered {status}")
        state = json.loads(text)
        with self.lock:
            if not state.get("changed") or state["version"] <= self.version:
                return
            first = self.state is None
            self.state, self.version = state, state["version"]
            if first:
                self.show_history()
            self.show_changes(quiet=first)
            self.show_refusals()

    def channel_messages(self, channel: str | None = None) -> list[dict[str, Any]]:
        channels = (self.state or {}).get("channels", {})
        return channels.get(channel or self.channel_id, {}).get("messages", [])

    def show_history(self) -> None:
        messages = self.channel_messages()
        for msg in messages:
            self.number(self.channel_id, msg["ts"])
        hidden = len(messages) - HISTORY_SHOWN
        if hidden > 0:
            self.emit(f"({hidden} earlier messages; /thread N shows any of them)")
        for msg in messages[-HISTORY_SHOWN:]:
            note = f"{len(msg['replies'])} replies" if msg.get("replies") else None
            self.emit(self.render(msg, note=note))

    def show_changes(self, *, quiet: bool) -> None:
        """Print new and changed messages, replies, ephemerals and modals since last time."""
        state = self.state or {}
        for channel, info in state.get("channels", {}).items():
            here = channel == self.channel_id
            for msg in info.get("messages", []):
                self.number(channel, msg["ts"])
                notice = f"(new in #{info.get('name')}: /channel {channel} to see it)"
                self.diff(("m", channel, msg["ts"]), _slack_message(msg), quiet,
                          lambda m=msg, h=here, n=notice: self.render(m) if h else n)
                for reply in msg.get("replies", []):
                    parent = self.number(channel, msg["ts"])
                    self.diff(("r", channel, reply["ts"]), reply, quiet or not here,
                              lambda r=reply, p=parent: self.render(r, reply_to=p))
        self.show_deleted(quiet)
        for user, messages in state.get("ephemerals", {}).items():
            for msg in messages:
                self.diff(("e", msg["ts"]), msg, quiet or user not in self.identities,
                          lambda m=msg: self.render(m))
        self.show_views(quiet)

    def show_refusals(self) -> None:
        """Every refusal not shown yet, those from before this client started included."""
        for refusal in (self.state or {}).get("refusals", []):
            if refusal.get("n", 0) > self.refusals_shown:
                self.refusals_shown = refusal["n"]
                self.emit(render_refusal(refusal))

    def show_deleted(self, quiet: bool) -> None:
        present = {("m", self.channel_id, m["ts"]) for m in self.channel_messages()}
        gone = [k for k in self.seen if k[:2] == ("m", self.channel_id) and k not in present]
        for key in gone:
            del self.seen[key]
            if not quiet:
                self.emit(f"{RULE} #{self.number(self.channel_id, key[2])} deleted {RULE}")

    def diff(self, key: tuple[str, ...], obj: dict[str, Any], quiet: bool, show: Any) -> None:
        fingerprint = json.dumps(obj, sort_keys=True)
        if self.seen.get(key) != fingerprint:
            self.seen[key] = fingerprint
            if not quiet:
                self.emit(show())

    def my_views(self) -> list[dict[str, Any]]:
        return [v for v in (self.state or {}).get("views", [])
                if v.get("user") in (self.user_id, None)]

    def show_views(self, quiet: bool) -> None:
        open_ids = set()
        for view in self.my_views():
            open_ids.add(view["id"])
            fingerprint = json.dumps([view.get("hash"), view.get("errors")])
            if self.seen.get(("v", view["id"])) != fingerprint:
                self.seen[("v", view["id"])] = fingerprint
                self.emit(render_view(view, self.buttons, users=self.users))
        for key in [k for k in self.seen if k[0] == "v" and k[1] not in open_ids]:
            del self.seen[key]
            if not quiet:
                self.emit(f"(modal {key[1]} closed)")

    # -- talking to the bot
    def interaction(self, message_ts: str | None = None,
                    thread_ts: str | None = None) -> dict[str, str]:
        status, text = _post_json(f"{self.base_url}/_local/interaction", {
            "channel": self.channel_id, "user": self.user_id, "message_ts": message_ts,
            "thread_ts": thread_ts})
        if status != 200:
            raise ConnectionError(f"local Slack answered {status}: {text}")
        return json.loads(text)

    def send(self, body: str) -> tuple[int, str]:
        status, text = _http(self.bot_url, body.encode(), sign(self.secret, body))
        if status != 200:
            self.emit(f"(bot answered HTTP {status}: {text.strip()[:300]})")
        return status, text

    def slash(self, command: str, text: str) -> None:
        ids = self.interaction()
        body = slash_command_body(text, user_id=self.user_id, user_name=self.user_name,
                                  channel_id=self.channel_id, command=command,
                                  channel_name=self.channel_name(), **ids)
        status, ack = self.send(body)
        if status == 200 and ack.strip():
            # Slack shows a command's ack body as a message, ephemeral unless it says otherwise.
            response = _json_or_none(ack) or {"text": ack}
            _post_json(f"{ids['response_url']}?ack=1", response)

    def channel_name(self) -> str:
        channels = (self.state or {}).get("channels", {})
        return channels.get(self.channel_id, {}).get("name", self.channel_id.lower())

    def find_message(self, channel: str | None, ts: str | None) -> dict[str, Any] | None:
        for msg in self.channel_messages(channel):
            if msg["ts"] == ts:
                return msg
            for reply in msg.get("replies", []):
                if reply["ts"] == ts:
                    return reply
        return None

    def press(self, number: int) -> None:
        button = self.buttons.get(number)
        if button is None:
            self.emit(f"(no button [{number}] on screen)")
            return
        if button.url:
            self.emit(f"(link) {button.url}")
            return
        view = next((v for v in self.my_views() if v["id"] == button.view_id), None)
        message = None if button.ephemeral else self.find_message(button.channel,
                                                                  button.message_ts)
        thread_ts = (message or {}).get("thread_ts")
        ids = self.interaction(button.message_ts, thread_ts)
        body = block_actions_body(
            button.action_id, button.value, user_id=self.user_id, user_name=self.user_name,
            channel_id=button.channel or self.channel_id, message_ts=button.message_ts or "",
            message=_slack_message(message) if message else None, block_id=button.block_id,
            text=button.label, is_ephemeral=button.ephemeral, channel_name=self.channel_name(),
            view=_view_payload(view) if view else None, **ids)
        self.send(body)

    def submit(self, args: list[str]) -> None:
        views = self.my_views()
        if not views:
            self.emit("(no modal is open)")
            return
        view = views[-1]
        try:
            assignments = dict(_assignment(a) for a in args)
            values = build_view_values(view, assignments)
        except ValueError as exc:
            self.emit(f"(cannot submit: {exc})")
            return
        ids = self.interaction()
        body = view_submission_body(_view_payload(view), values, user_id=self.user_id,
                                    user_name=self.user_name, trigger_id=ids["trigger_id"])
        status, ack = self.send(body)
        if status != 200:
            return
        response = _json_or_none(ack) if ack.strip() else None
        for key, error in ((response or {}).get("errors") or {}).items():
            self.emit(f"  ✗ {key}: {error}")
        _post_json(f"{self.base_url}/_local/view_response",
                   {"view_id": view["id"], "response": response})

    def cancel(self) -> None:
        views = self.my_views()
        if not views:
            self.emit("(no modal is open)")
            return
        _post_json(f"{self.base_url}/_local/view_response",
                   {"view_id": views[-1]["id"], "response": {"response_action": "clear"}})

    # -- identity and places
    def act_as(self, user_id: str) -> None:
        if user_id:
            self.user_id = user_id
            self.identities.add(user_id)
            self.user_name = self.users.get(user_id, user_id)
            if user_id not in self.users:
                self.emit(f"(note: {user_id} is not a user of this workspace; see /users)")
        self.emit(f"you are {self.user_id} ({self.user_name})")

    def list_users(self) -> None:
        for uid, name in self.users.items():
            self.emit(f"  {uid}  {name}{'  ← you' if uid == self.user_id else ''}")
        for group in (self.state or {}).get("usergroups", []):
            members = ", ".join(group.get("users", []))
            self.emit(f"  {group['id']}  @{group['handle']}: {members}")

    def switch_channel(self, channel_id: str) -> None:
        channels = (self.state or {}).get("channels", {})
        if channel_id:
            self.channel_id = channel_id
            with self.lock:
                self.show_history()
        for cid, info in channels.items():
            marker = "  ← here" if cid == self.channel_id else ""
            self.emit(f"  {cid}  #{info.get('name')}  ({len(info.get('messages', []))} "
                      f"messages){marker}")

    def show_thread(self, number: int) -> None:
        wanted = next((ts for (c, ts), n in self.numbers.items()
                       if c == self.channel_id and n == number), None)
        msg = self.find_message(self.channel_id, wanted)
        if msg is None:
            self.emit(f"(no message #{number} in this channel)")
            return
        self.emit(self.render(msg))
        for reply in msg.get("replies", []):
            self.emit(self.render(reply, reply_to=number))
        if not msg.get("replies"):
            self.emit("    (no replies)")

    def wait(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            self.refresh(wait=min(left, 1.0))

    # -- the loop
    def poll_forever(self) -> None:
        """Background: long-poll the stand-in and print changes as they happen."""
        while not self.stopped.is_set():
            try:
                self.refresh(wait=2.0)
            except (OSError, ValueError, ConnectionError):
                self.stopped.wait(1.0)

    def handle(self, line: str) -> bool:
        """Run one typed line; False means quit."""
        line = line.strip()
        if not line:
            return True
        word, _, rest = line.partition(" ")
        rest = rest.strip()
        if word in ("/quit", "/exit"):
            return False
        if word in self.commands:
            self.slash(word, rest)
        elif word in _COMMANDS:
            _COMMANDS[word](self, rest)
        else:
            self.emit(f"(unknown command {word!r}; /help lists them)")
            return True
        self.refresh()
        return True


def _view_payload(view: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in view.items() if k not in ("user", "errors")}


def _assignment(arg: str) -> tuple[str, str]:
    key, sep, value = arg.partition("=")
    if not sep or not key:
        raise ValueError(f"expected KEY=VALUE, got {arg!r}")
    return key, value


def _int_arg(session: _Session, rest: str, then: Any) -> None:
    if not rest.isdigit():
        session.emit("(expected a number)")
        return
    then(int(rest))


_COMMANDS: dict[str, Any] = {
    "/press": lambda s, rest: _int_arg(s, rest, s.press),
    "/thread": lambda s, rest: _int_arg(s, rest, s.show_thread),
    "/submit": lambda s, rest: s.submit(shlex.split(rest)),
    "/cancel": lambda s, rest: s.cancel(),
    "/as": lambda s, rest: s.act_as(rest),
    "/users": lambda s, rest: s.list_users(),
    "/channel": lambda s, rest: s.switch_channel(rest),
    "/wait": lambda s, rest: s.wait(float(rest or 1)),
    "/help": lambda s, rest: s.emit(HELP),
}


def _connect(session: _Session, timeout: float = 10.0) -> bool:
    """First state fetch, retried while the stand-in starts (``make run`` starts all at once)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            session.refresh()
            return True
        except (OSError, ValueError) as exc:
            if time.monotonic() > deadline:
                session.emit(f"(cannot reach local Slack at {session.base_url}: {exc})")
                return False
            time.sleep(0.2)


def run_client(
    bot_url: str,
    slack: LocalSlack | str,
    signing_secret: str,
    *,
    user_id: str = "U0LOCAL1",
    user_name: str = "you",
    channel_id: str = "C0LOCAL",
    input: IO[str] = sys.stdin,
    output: IO[str] = sys.stdout,
    commands: tuple[str, ...] = ("/train",),
    poll: bool = True,
) -> None:
    """Run the REPL until ``/quit`` or end of input.

    ``bot_url`` is the bot's Slack endpoint (e.g. ``http://127.0.0.1:3000/slack/events``);
    ``slack`` is the stand-in or its base URL (``http://127.0.0.1:PORT``; an ``…/api/`` URL is
    accepted too). ``poll=False`` skips the background printer: output then changes only
    after each command (deterministic, for tests).
    """
    base = slack if isinstance(slack, str) else slack.url
    base = base.rstrip("/").removesuffix("/api")
    session = _Session(bot_url, base, signing_secret, user_id=user_id, user_name=user_name,
                       channel_id=channel_id, commands=commands, output=output)
    session.emit(f"local Slack: you are {user_id} ({user_name}) in {channel_id}; /help")
    if not _connect(session):
        return
    poller = threading.Thread(target=session.poll_forever, name="localslack-client",
                              daemon=True)
    if poll:
        poller.start()
    try:
        for line in input:
            try:
                if not session.handle(line):
                    break
            except (OSError, ConnectionError) as exc:
                session.emit(f"(cannot reach local Slack or the bot: {exc})")
            except ValueError as exc:
                session.emit(f"(cannot do that: {exc})")
        with contextlib.suppress(OSError, ValueError):
            session.refresh()  # what arrived while the last command ran
    except KeyboardInterrupt:
        pass
    finally:
        session.stopped.set()


def main(argv: list[str] | None = None) -> None:
    """``python -m bot.localslack.client --bot-url … --slack-url …``."""
    parser = argparse.ArgumentParser(description="Talk to a local trainbot as a Slack user.")
    parser.add_argument("--bot-url", default="http://127.0.0.1:3000/slack/events")
    parser.add_argument("--slack-url", default="http://127.0.0.1:3001")
    parser.add_argument("--signing-secret", default=os.environ.get("SLACK_SIGNING_SECRET", ""))
    parser.add_argument("--user", default="U0LOCAL1")
    parser.add_argument("--name", default=None, help="user name (default: the user's own)")
    parser.add_argument("--channel", default="C0LOCAL")
    args = parser.parse_args(argv)
    if not args.signing_secret:
        parser.error("set SLACK_SIGNING_SECRET or pass --signing-secret")
    from bot.localslack.server import DEFAULT_USERS

    name = args.name or DEFAULT_USERS.get(args.user, args.user)
    run_client(args.bot_url, args.slack_url, args.signing_secret, user_id=args.user,
               channel_id=args.channel, user_name=name)


if __name__ == "__main__":
    main()
