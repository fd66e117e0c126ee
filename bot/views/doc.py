"""A neutral document model: what to show, rendered as terminal text or as Block Kit.

Presenters build a :class:`Doc`; ``bot.views.text`` prints it for the CLI and
``bot.slack.blocks`` turns it into Block Kit, so no view is written twice.
Text uses Slack mrkdwn (``*bold*``, backticks, ``<url|label>``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Button", "Doc", "Section"]


@dataclass(frozen=True)
class Button:
    label: str
    action_id: str
    value: str = ""
    url: str | None = None
    style: str | None = None  # "primary" | "danger"
    confirm: str | None = None  # a confirmation question; None = no dialog


@dataclass
class Section:
    text: str | None = None
    fields: list[tuple[str, str]] = field(default_factory=list)
    code: str | None = None  # preformatted (log tails)


@dataclass
class Doc:
    title: str
    sections: list[Section] = field(default_factory=list)
    buttons: list[Button] = field(default_factory=list)
    context: list[str] = field(default_factory=list)
    image_url: str | None = None

    def add(self, text: str | None = None, **kw: object) -> Doc:
        self.sections.append(Section(text=text, **kw))  # type: ignore[arg-type]  # Section's own fields
        return self

    @property
    def fallback(self) -> str:
        """Plain text for notifications and clients that can't show blocks."""
        return self.title
