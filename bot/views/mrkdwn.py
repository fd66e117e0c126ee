"""Building Slack mrkdwn safely from values a user or a training job provided.

Slack reads ``&``, ``<`` and ``>`` as control characters in every text it formats: ``<!channel>``
pings a whole channel, ``<https://evil.example|Approve>`` is a link that says Approve. So every
value that trainbot did not write itself goes through :func:`esc` (or :func:`code`, which also
keeps a value inside its code span), and the only control sequences in a message are the ones
built here on purpose: :func:`mention`, :func:`channel`, :func:`usergroup`, :func:`link`.

https://api.slack.com/reference/surfaces/formatting#escaping
"""

from __future__ import annotations

import re

__all__ = [
    "channel",
    "code",
    "code_block",
    "esc",
    "esc_keep_mentions",
    "link",
    "mention",
    "unesc",
    "usergroup",
]

_USER = re.compile(r"[UW][A-Z0-9]{2,}")
_CHANNEL = re.compile(r"[CDG][A-Z0-9]{2,}")
_GROUP = re.compile(r"S[A-Z0-9]{2,}")
# A backtick ends an inline code span early (Slack has no escape for it inside one), so a
# value's own backticks become the look-alike modifier letter grave accent.
_BACKTICK_STANDIN = "ˋ"
# Mentions that ``esc_keep_mentions`` gives back their meaning after escaping.
_ESCAPED_MENTION = re.compile(
    r"&lt;(@[UW][A-Z0-9]{2,}|#[CDG][A-Z0-9]{2,}|!subteam\^S[A-Z0-9]{2,})&gt;")


def esc(value: object) -> str:
    """``value`` as text Slack shows literally: ``&``, ``<``, ``>`` become entities."""
    return str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def unesc(text: str) -> str:
    """The inverse of :func:`esc` (for terminals, which show text as it is)."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def code(value: object) -> str:
    """``value`` in an inline code span it can't break out of (one line)."""
    text = esc(value).replace("`", _BACKTICK_STANDIN).replace("\r", " ").replace("\n", " ")
    return f"`{text or ' '}`"


def code_block(text: str) -> str:
    """Preformatted text (log tails) in a block it can't close early."""
    return "```" + esc(text).replace("```", _BACKTICK_STANDIN * 3) + "```"


def mention(user: str | None) -> str:
    """``<@U…>`` for a Slack user id; any other name (a CLI user) as plain ``@name``."""
    if user and _USER.fullmatch(user):
        return f"<@{user}>"
    return "@" + esc(user or "unknown")


def channel(channel_id: str) -> str:
    return f"<#{channel_id}>" if _CHANNEL.fullmatch(channel_id) else "#" + esc(channel_id)


def usergroup(group_id: str) -> str:
    return f"<!subteam^{group_id}>" if _GROUP.fullmatch(group_id) else "@" + esc(group_id)


def link(url: str | None, label: str) -> str:
    """A link to an http(s) URL trainbot built; anything else is shown as the label alone."""
    if not url or not url.startswith(("http://", "https://")) or any(c in url for c in "<>| "):
        return esc(label)
    return f"<{url}|{esc(label).replace('|', '¦')}>"


def esc_keep_mentions(text: str) -> str:
    """Escape a message, keeping well-formed user/channel/user-group mentions.

    For error texts, which name people (``already approved by <@U…>``) and may quote what the
    user typed: the mentions are kept because they only ever reach the user who typed them
    (ephemeral answers), never the channel.
    """
    return _ESCAPED_MENTION.sub(r"<\1>", esc(text))
