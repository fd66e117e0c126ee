"""Slack as terminal text: messages, Block Kit blocks, modals and refused calls.

Buttons get numbers (``[5] Rerun``) through :class:`ButtonNumbers`, which keeps a button's
number across re-renders so that ``/press 5`` means the same button all session long.
Standard library only.
"""

from __future__ import annotations

import difflib
import time
from dataclasses import dataclass
from typing import Any

from bot.localslack.blockkit import options_of, text_of

__all__ = ["RULE", "Button", "ButtonNumbers", "render_edit", "render_message",
           "render_refusal", "render_view"]

RULE = "──"


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
            number=number, label=text_of(element.get("text")), block_id=block_id,
            action_id=element.get("action_id") or "", value=element.get("value"),
            url=element.get("url"), channel=channel, message_ts=message_ts,
            ephemeral=ephemeral, view_id=view_id)
        return number

    def get(self, number: int) -> Button | None:
        return self._buttons.get(number)


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
    label = text_of(element.get("text"))
    return f"[{number}] {label} → {element['url']}" if element.get("url") else f"[{number}] {label}"


def _element(element: dict[str, Any], numbers: ButtonNumbers, where: dict[str, Any]) -> str:
    if element.get("type") == "button":
        return _button(element, numbers, where)
    options = [text_of(o.get("text")) for o in options_of(element)]
    kind = element.get("type", "element")
    return f"({kind}: {' | '.join(options)})" if options else f"({kind})"


def _rich_text(node: Any, users: dict[str, str]) -> str:
    if isinstance(node, list):
        return "".join(_rich_text(n, users) for n in node)
    if not isinstance(node, dict):
        return ""
    kind = node.get("type")
    if kind == "user":
        user_id = str(node.get("user_id", ""))
        return "@" + users.get(user_id, user_id)
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
        return [f"## {text_of(block.get('text'))}"]
    if kind == "divider":
        return ["─" * 32]
    if kind == "section":
        lines = _plain(text_of(block.get("text")), users).splitlines()
        lines += ["  • " + _plain(text_of(f), users).replace("\n", " ")
                  for f in block.get("fields") or []]
        if isinstance(block.get("accessory"), dict) and block["accessory"].get("type") != "image":
            lines.append("  " + _element(block["accessory"], numbers, where))
        return lines
    if kind == "context":
        parts = [_plain(text_of(e), users) if e.get("type") != "image" else e.get("alt_text", "")
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
        return [f"{text_of(block.get('label'))}: {element}"]
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
    options = [str(o.get("value")) for o in options_of(element)]
    details = [kind]
    if options:
        details.append("one of: " + ", ".join(options))
    if kind == "file_input":
        types = ", ".join(element.get("filetypes") or []) or "any type"
        details.append(f"up to {element.get('max_files') or 10} file(s), {types}: KEY=@PATH")
    initial = (element.get("initial_value") or text_of((element.get("initial_option") or {})
                                                      .get("text")) or None)
    if initial:
        details.append(f"default: {initial}")
    if block.get("optional"):
        details.append("optional")
    return f"• {text_of(block.get('label'))} [{_input_key(block)}] — {'; '.join(details)}"


def render_view(view: dict[str, Any], button_numbers: ButtonNumbers | None = None,
                *, users: dict[str, str] | None = None) -> str:
    """An open modal: title, its blocks, its inputs (with the keys ``/submit`` takes) and
    any inline errors the bot answered with."""
    numbers = button_numbers or ButtonNumbers()
    users = users or {}
    where = {"channel": None, "message_ts": None, "view_id": view.get("id")}
    submit = text_of(view.get("submit")) or "Submit"
    lines = [f"┌─ modal: {text_of(view.get('title'))} ({view.get('id')}) ─ [{submit}]"]
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



def render_edit(label: str, before: list[str], after: list[str], *, indent: str = "") -> str:
    """An edited message as the lines that changed: ``✎ #1: <first>`` with the others aligned
    under it; "" when its text is the same.

    ``before`` and ``after`` are its rendered lines below the header. New and changed lines
    are shown as they read now; when lines only went away, they are shown struck (``− …``).
    """
    added: list[str] = []
    removed: list[str] = []
    matcher = difflib.SequenceMatcher(a=before, b=after, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op in ("replace", "insert"):
            added += after[j1:j2]
        elif op == "delete":
            removed += before[i1:i2]
    lines = [line.strip() for line in added if line.strip()] or [
        f"− {line.strip()}" for line in removed if line.strip()]
    if not lines:
        return ""
    head = f"{indent}✎ {label}: "
    return "\n".join([head + lines[0], *(" " * len(head) + line for line in lines[1:])])
