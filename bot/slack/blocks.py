"""Render a :class:`Doc` as Block Kit, within Slack's limits.

Limits (https://api.slack.com/reference/block-kit/blocks): 50 blocks per message (100 in a
modal), 3,000 characters of section text, 10 fields of 2,000 characters, 25 elements in an
actions block, 75 characters of button text, 2,000 characters of button value. Long output is
truncated with a note — a post must never fail for being too long.
"""

from __future__ import annotations

import re
from typing import Any

from bot.views.doc import Button, Doc
from bot.views.mrkdwn import code_block

__all__ = ["MAX_BLOCKS", "fallback_text", "render_blocks"]

MAX_BLOCKS = 50
MAX_TEXT = 3000
MAX_FIELD = 2000
MAX_FIELDS = 10
MAX_HEADER = 150
TRUNCATED = "… (truncated — use the CLI or `--json` for the full output)"

Block = dict[str, Any]


# What a cut may leave dangling at the end of mrkdwn: half an entity (``&am``) or an
# unclosed control sequence (``<https://…``). Either would show as broken markup.
_DANGLING = re.compile(r"(&[a-z]{0,3}|<[^>]*)$")


def _clip(text: str, n: int) -> str:
    if len(text) <= n:
        return text
    return _DANGLING.sub("", text[: n - 1]) + "…"


def _mrkdwn(text: str, n: int = MAX_TEXT) -> dict[str, str]:
    return {"type": "mrkdwn", "text": _clip(text or " ", n)}


def _button(b: Button) -> Block:
    el: Block = {"type": "button", "text": {"type": "plain_text", "text": _clip(b.label, 75),
                                            "emoji": True},
                 "action_id": b.action_id}
    if b.value:
        el["value"] = _clip(b.value, 2000)
    if b.url:
        el["url"] = b.url[:3000]
    if b.style:
        el["style"] = b.style
    if b.confirm:
        el["confirm"] = {
            "title": {"type": "plain_text", "text": "Are you sure?"},
            "text": _mrkdwn(b.confirm, 300),
            "confirm": {"type": "plain_text", "text": "Yes"},
            "deny": {"type": "plain_text", "text": "Cancel"},
        }
    return el


def _section_blocks(
    text: str | None, fields: list[tuple[str, str]], code: str | None
) -> list[Block]:
    out: list[Block] = []
    if text or fields:
        block: Block = {"type": "section", "text": _mrkdwn(text or " ")}
        if fields:
            block["fields"] = [_mrkdwn(f"*{k}*\n{v}", MAX_FIELD) for k, v in fields[:MAX_FIELDS]]
        out.append(block)
        for i in range(MAX_FIELDS, len(fields), MAX_FIELDS):
            out.append({"type": "section", "fields": [
                _mrkdwn(f"*{k}*\n{v}", MAX_FIELD) for k, v in fields[i:i + MAX_FIELDS]]})
    if code:
        # Keep the tail of long output (logs): the end is what people need. Escaping can
        # make the text longer, so cut the tail to fit after escaping.
        body = code_block(code)
        keep = len(code)
        while len(body) > MAX_TEXT:
            keep -= len(body) - MAX_TEXT + 1
            body = code_block("…" + code[-keep:])
        out.append({"type": "section", "text": _mrkdwn(body)})
    return out


def render_blocks(doc: Doc, *, max_blocks: int = MAX_BLOCKS) -> list[Block]:
    blocks: list[Block] = [{"type": "section", "text": _mrkdwn(doc.title)}]
    for s in doc.sections:
        blocks.extend(_section_blocks(s.text, s.fields, s.code))
    tail: list[Block] = []
    if doc.image_url:
        tail.append({"type": "image", "image_url": doc.image_url, "alt_text": "chart"})
    buttons = [_button(b) for b in doc.buttons]
    for i in range(0, len(buttons), 25):
        tail.append({"type": "actions", "elements": buttons[i:i + 25]})
    if doc.context:
        tail.append({"type": "context", "elements": [_mrkdwn(c, MAX_FIELD)
                                                     for c in doc.context[:10] if c]})
    room = max_blocks - len(tail)
    if len(blocks) > room:
        blocks = [*blocks[:room - 1], {"type": "context", "elements": [_mrkdwn(TRUNCATED)]}]
    return [b for b in blocks + tail if b.get("elements", True)]


def fallback_text(doc: Doc) -> str:
    """The notification text (``text`` next to ``blocks``)."""
    return _clip(doc.title.replace("*", ""), MAX_TEXT)
