"""Slack's text escaping, checked: what in a ``mrkdwn`` text would not show as written.

Slack reads ``&``, ``<`` and ``>`` as markup: ``<@U…>``, ``<#C…>``, ``<!subteam^S…>``,
``<!date^…|…>``, ``<!here>``/``<!channel>``/``<!everyone>`` and ``<url>``/``<url|label>`` are
control sequences, and ``&amp;``, ``&lt;``, ``&gt;`` are the only entities. Any other ``<`` or
``&`` is the app's mistake: real Slack takes the text and shows it mangled
(https://api.slack.com/reference/surfaces/formatting#escaping). On top of that, and because
trainbot never means them, a special mention must be allowed and a link must point to an
allowed host. Standard library only.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import urlsplit

__all__ = ["DEFAULT_LINK_HOSTS", "SPECIAL_MENTIONS", "escaping_problems"]

# Exact hosts, or "*.domain" for any host under domain. Ports do not matter.
DEFAULT_LINK_HOSTS = frozenset({
    "127.0.0.1", "localhost", "::1",
    "*.console.aws.amazon.com", "docs.aws.amazon.com", "*.slack.com", "api.slack.com",
})
SPECIAL_MENTIONS = ("here", "channel", "everyone")
MANGLED = " (real Slack takes it and shows it mangled)"
_AMP = f'unescaped "&": write &amp;{MANGLED}'
_LT = f'unescaped "<": write &lt;{MANGLED}'

_SPECIAL_CHAR = re.compile(r"[<&]")
_ENTITY = re.compile(r"&(?:amp|lt|gt);")
_MENTIONS = (re.compile(r"@[UW][A-Z0-9]+(\|[^|]*)?"), re.compile(r"#[CGD][A-Z0-9]+(\|[^|]*)?"),
             re.compile(r"!subteam\^S[A-Z0-9]+(\|[^|]*)?"),
             re.compile(r"!date\^\d+\^[^|^]+(\^[^|^]+)?\|[^|]+"))
_SPECIAL = re.compile(r"!(\w+)(\|[^|]*)?")
_BARE_HOST = re.compile(r"[\w-]+(\.[\w-]+)+(/\S*)?")


def escaping_problems(text: str, *, link_hosts: frozenset[str],
                      special_mentions: frozenset[str]) -> Iterator[str]:
    """What is wrong in ``text``, each with a short quote of where (never the whole text)."""
    at = 0
    while (found := _SPECIAL_CHAR.search(text, at)) is not None:
        start, at = found.start(), found.start() + 1
        end = text.find(">", start)
        inner = text[start + 1:end] if end != -1 else ""
        if text[start] == "&":
            wrong = None if _ENTITY.match(text, start) else _AMP
        elif end == -1 or "<" in inner:
            wrong = _LT
        else:
            wrong, at = _control(inner, link_hosts, special_mentions), end + 1
        if wrong:
            yield f"{wrong} in {_snippet(text, start)}"


def _control(inner: str, link_hosts: frozenset[str],
             special_mentions: frozenset[str]) -> str | None:
    """What is wrong with the control sequence ``<inner>``, if anything."""
    if any(p.fullmatch(inner) for p in _MENTIONS):
        return _label_problem(inner)
    special = _SPECIAL.fullmatch(inner)
    if special and special.group(1) in SPECIAL_MENTIONS:
        if special.group(1) not in special_mentions:
            return f"<!{special.group(1)}> notifies everyone in the channel (not in " \
                   "special_mentions)"
        return _label_problem(inner)
    if inner[:1] in ("@", "#", "!"):
        return f"<{inner[:40]}> is not a well-formed mention"
    target = inner.partition("|")[0]
    # Slack links a bare host too (its own samples use <fakeLink.toEmployeeProfile.com|…>).
    parts = urlsplit(("http://" if _BARE_HOST.fullmatch(target) else "") + target)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f'unescaped "<" (it starts no mention or http(s) link): write &lt;{MANGLED}'
    if not host_allowed(parts.hostname, link_hosts):
        return f"link to {parts.hostname} is not in link_hosts"
    return _label_problem(inner)


def host_allowed(host: str, link_hosts: frozenset[str]) -> bool:
    """``host`` is one of ``link_hosts``, or under a ``"*.domain"`` one."""
    host = host.lower()
    return any(host == allowed or (allowed.startswith("*.") and host.endswith(allowed[1:]))
               for allowed in map(str.lower, link_hosts))


def _label_problem(inner: str) -> str | None:
    """A link's or mention's label follows the text's rules for ``&``."""
    label = inner.partition("|")[2]
    bad = any(not _ENTITY.match(label, m.start()) for m in re.finditer("&", label))
    return f'unescaped "&" in the label: write &amp;{MANGLED}' if bad else None


def _snippet(text: str, at: int) -> str:
    """A short quote of ``text`` around ``at``."""
    start, end = max(0, at - 20), min(len(text), at + 20)
    quoted = text[start:end].replace("\n", " ")
    return f'"{"…" if start else ""}{quoted}{"…" if end < len(text) else ""}"'
