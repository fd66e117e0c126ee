"""What the terminal client shows of the workspace, and what it has shown already.

Slack shows a channel as messages that change in place; a terminal can only append, so
:class:`Screen` appends what a person looking at Slack would notice, once:

- a new message, thread reply or ephemeral, whole: header, blocks, numbered buttons;
- an edited one (``chat.update``, ``replace_original``), as the lines that changed only
  (``✎ #1: :white_check_mark: *demo v1* — COMPLETED``): the rest is on screen already.
  Nothing when only Slack's bookkeeping changed (a parent's reply count, the edited mark);
- a reply sent to the channel too (``reply_broadcast``) as the channel message it also is,
  marked ``also in thread #N``, and not a second time as a reply;
- modals as they open or change, deletions, and every call Slack refused the bot.

Every message is rendered in full whenever it changes, whether or not all of it is printed,
so buttons get their numbers exactly as when whole cards were reprinted. Standard library
only.
"""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any

from bot.localslack.render import (
    RULE,
    ButtonNumbers,
    render_edit,
    render_message,
    render_refusal,
    render_view,
)

__all__ = ["HISTORY_SHOWN", "Screen", "Seat", "slack_message"]

HISTORY_SHOWN = 10


def slack_message(msg: dict[str, Any]) -> dict[str, Any]:
    """Drop the stand-in's bookkeeping keys: what Slack puts in an interaction payload."""
    return {k: v for k, v in msg.items() if k not in ("replies", "edit_count")}


@dataclass
class Seat:
    """Who is at the terminal and which channel they look at (``/as`` and ``/channel``
    change them). ``identities`` is everyone this person has acted as: their ephemerals
    still reach this terminal."""

    user_id: str
    channel_id: str
    identities: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.identities.add(self.user_id)


class Screen:
    """The workspace as last fetched, printed to ``output`` as it changes. Thread-safe."""

    def __init__(self, output: IO[str], seat: Seat) -> None:
        self.output = output
        self.seat = seat
        self.lock = threading.RLock()
        self.state: dict[str, Any] | None = None
        self.version = -1
        self.seen: dict[tuple[str, ...], str] = {}  # what Slack holds, as last seen
        self.shown: dict[tuple[str, ...], list[str]] = {}  # lines below the header, as printed
        self.numbers: dict[tuple[str, str], int] = {}
        self.buttons = ButtonNumbers()
        self.refusals_shown = 0

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
        channel = self.seat.channel_id
        broadcast = msg.get("subtype") == "thread_broadcast"
        if reply_to is not None:
            notes = [f"↳ reply to #{reply_to}"]
            if broadcast:
                notes.append(f"also sent to the channel as #{self.number(channel, msg['ts'])}")
            return render_message(msg, self.buttons, users=self.users, channel=channel,
                                  note=", ".join([*notes, *([note] if note else [])]),
                                  indent="    ")
        if broadcast and msg.get("thread_ts"):
            thread = f"also in thread #{self.number(channel, msg['thread_ts'])}"
            note = thread + (f", {note}" if note else "")
        number = self.number(channel, msg["ts"]) if "recipient" not in msg else None
        return render_message(msg, self.buttons, number=number, users=self.users,
                              channel=channel, note=note, viewer=self.seat.user_id)

    # -- state
    def take(self, state: dict[str, Any]) -> None:
        """A fetched workspace: print what changed since the last one (on the first, the
        channel's recent history)."""
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
        return channels.get(channel or self.seat.channel_id, {}).get("messages", [])

    def channel_name(self) -> str:
        channels = (self.state or {}).get("channels", {})
        channel = self.seat.channel_id
        return channels.get(channel, {}).get("name", channel.lower())

    def find_message(self, channel: str | None, ts: str | None) -> dict[str, Any] | None:
        for msg in self.channel_messages(channel):
            if msg["ts"] == ts:
                return msg
            for reply in msg.get("replies", []):
                if reply["ts"] == ts:
                    return reply
        return None

    def my_views(self) -> list[dict[str, Any]]:
        return [v for v in (self.state or {}).get("views", [])
                if v.get("user") in (self.seat.user_id, None)]

    # -- printing
    def show_history(self) -> None:
        channel = self.seat.channel_id
        messages = self.channel_messages()
        for msg in messages:
            self.number(channel, msg["ts"])
        hidden = len(messages) - HISTORY_SHOWN
        if hidden > 0:
            self.emit(f"({hidden} earlier messages; /thread N shows any of them)")
        for msg in messages[-HISTORY_SHOWN:]:
            note = f"{len(msg['replies'])} replies" if msg.get("replies") else None
            text = self.render(msg, note=note)
            self.shown[("m", channel, msg["ts"])] = text.split("\n")[1:]
            self.emit(text)

    def show_changes(self, *, quiet: bool) -> None:
        """Print new and changed messages, replies, ephemerals and modals since last time."""
        state = self.state or {}
        for channel, info in state.get("channels", {}).items():
            messages = info.get("messages", [])
            for msg in messages:  # numbered in channel order, before any is printed
                self.number(channel, msg["ts"])
            in_channel = {m["ts"]: m for m in messages}
            for msg in messages:
                self.show_message(channel, msg, info.get("name"), quiet=quiet)
                parent = self.number(channel, msg["ts"])
                for reply in msg.get("replies", []):
                    if reply["ts"] in in_channel:  # broadcast: shown as the channel message
                        self.show_message(channel, in_channel[reply["ts"]], info.get("name"),
                                          quiet=quiet)
                        continue
                    self.show(("r", channel, reply["ts"]), reply,
                              quiet or channel != self.seat.channel_id,
                              functools.partial(self.render, reply, reply_to=parent),
                              label=f"reply in #{parent}")
        self.show_deleted(quiet)
        for user, messages in state.get("ephemerals", {}).items():
            for msg in messages:
                who = ("you" if user == self.seat.user_id
                       else f"{user} ({self.users.get(user, '?')})")
                self.show(("e", msg["ts"]), msg, quiet or user not in self.seat.identities,
                          functools.partial(self.render, msg), label=f"only visible to {who}")
        self.show_views(quiet)

    def show_message(self, channel: str, msg: dict[str, Any], name: str | None, *,
                     quiet: bool) -> None:
        """A channel message: whole or its changes here; a one-line notice elsewhere."""
        key = ("m", channel, msg["ts"])
        if channel == self.seat.channel_id:
            self.show(key, msg, quiet, functools.partial(self.render, msg),
                      label=f"#{self.number(channel, msg['ts'])}")
            return
        new = key not in self.seen
        self.seen[key] = _fingerprint(msg)
        if new and not quiet:
            self.emit(f"(new in #{name}: /channel {channel} to see it)")

    def show(self, key: tuple[str, ...], msg: dict[str, Any], quiet: bool,
             render: Callable[[], str], *, label: str) -> None:
        """Print ``msg`` whole the first time, then only the lines an edit changed."""
        fingerprint = _fingerprint(msg)
        if self.seen.get(key) == fingerprint:
            return
        self.seen[key] = fingerprint
        if quiet:
            return
        header, *lines = render().split("\n")
        before, self.shown[key] = self.shown.get(key), lines
        if before is None:
            self.emit("\n".join([header, *lines]))
            return
        indent = header[:len(header) - len(header.lstrip())]
        edit = render_edit(label, before, lines, indent=indent)
        if edit:
            self.emit(edit)

    def show_refusals(self) -> None:
        """Every refusal not shown yet, those from before this client started included."""
        for refusal in (self.state or {}).get("refusals", []):
            if refusal.get("n", 0) > self.refusals_shown:
                self.refusals_shown = refusal["n"]
                self.emit(render_refusal(refusal))

    def show_deleted(self, quiet: bool) -> None:
        channel = self.seat.channel_id
        present = {("m", channel, m["ts"]) for m in self.channel_messages()}
        gone = [k for k in self.seen if k[:2] == ("m", channel) and k not in present]
        for key in gone:
            del self.seen[key]
            self.shown.pop(key, None)
            if not quiet:
                self.emit(f"{RULE} #{self.number(channel, key[2])} deleted {RULE}")

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

    def show_thread(self, number: int) -> None:
        channel = self.seat.channel_id
        wanted = next((ts for (c, ts), n in self.numbers.items()
                       if c == channel and n == number), None)
        msg = self.find_message(channel, wanted)
        if msg is None:
            self.emit(f"(no message #{number} in this channel)")
            return
        self.emit(self.render(msg))
        for reply in msg.get("replies", []):
            self.emit(self.render(reply, reply_to=number))
        if not msg.get("replies"):
            self.emit("    (no replies)")


def _fingerprint(msg: dict[str, Any]) -> str:
    return json.dumps(slack_message(msg), sort_keys=True)
