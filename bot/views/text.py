"""Render a :class:`Doc` for a terminal."""

from __future__ import annotations

import re

from bot.views.doc import Doc

__all__ = ["render_text"]

_LINK = re.compile(r"<([^|>]+)\|([^>]+)>")
_MENTION = re.compile(r"<[@#!]([^>|]+)(\|[^>]*)?>")


def plain(text: str) -> str:
    text = _LINK.sub(r"\2 (\1)", text)
    text = _MENTION.sub(r"@\1", text)
    return text.replace("*", "").replace(":white_check_mark:", "✔").replace(":x:", "✘")


def render_text(doc: Doc) -> str:
    lines = [plain(doc.title), ""]
    for s in doc.sections:
        if s.text:
            lines.append(plain(s.text))
        if s.fields:
            width = max(len(plain(k)) for k, _ in s.fields)
            lines.extend(f"  {plain(k):<{width}}  {plain(v)}" for k, v in s.fields)
        if s.code:
            lines.extend("  | " + line for line in s.code.splitlines())
        lines.append("")
    links = [f"{b.label}: {b.url}" for b in doc.buttons if b.url]
    if links:
        lines.extend(links)
    lines.extend(plain(c) for c in doc.context)
    return "\n".join(lines).rstrip() + "\n"
