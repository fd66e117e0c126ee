"""Render a :class:`Doc` for a terminal."""

from __future__ import annotations

import re

from bot.views.doc import Doc
from bot.views.mrkdwn import unesc

__all__ = ["plain", "render_text"]

_LINK = re.compile(r"<([^|>]+)\|([^>]+)>")
_MENTION = re.compile(r"<[@#!]([^>|]+)(\|[^>]*)?>")


_EMOJI = {
    "white_check_mark": "✔", "x": "✘", "hourglass_flowing_sand": "⏳", "hourglass": "⏳",
    "inbox_tray": "📥", "rocket": "🚀", "gear": "⚙", "outbox_tray": "📤", "octagonal_sign": "🛑",
    "black_square_for_stop": "■", "no_entry_sign": "🚫", "warning": "⚠", "floppy_disk": "💾",
    "brain": "🧠", "bookmark": "🔖", "package": "📦", "ballot_box_with_check": "☑", "gift": "🎁",
    "satellite": "📡", "zzz": "💤", "arrow_up": "↑", "arrow_down": "↓", "wastebasket": "🗑",
    "raising_hand": "🙋", "recycle": "♻", "mag": "🔍", "trophy": "🏆",
    "double_vertical_bar": "⏸", "moneybag": "💰", "bar_chart": "📊", "rotating_light": "🚨",
    "money_with_wings": "💸",
}
_SHORTCODE = re.compile(r":([a-z_]+):")


def plain(text: str) -> str:
    """Slack mrkdwn as a terminal shows it: no ``*bold*`` stars or code backticks,
    ``<url|label>`` as ``label (url)``, mentions as ``@id``, emoji shortcodes as emoji."""
    text = _LINK.sub(r"\2 (\1)", text)
    text = _MENTION.sub(r"@\1", text)
    text = _SHORTCODE.sub(lambda m: _EMOJI.get(m.group(1), m.group(0)), text)
    return unesc(text.replace("*", "").replace("`", ""))


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
