"""``/train help``: usage of every command, from the grammar.

Apart from the other presenters on purpose: the Slack ack answers help itself, and must not
import the domain models to do it.
"""

from __future__ import annotations

from bot.commands import USAGE
from bot.views.doc import Doc

__all__ = ["help_doc"]


def help_doc(topic: str | None = None) -> Doc:
    if topic:
        return Doc(title=f"/train {topic}").add(f"`/train {USAGE[topic]}`")
    doc = Doc(title="trainbot — train models from Slack")
    doc.add("\n".join(f"• `/train {u}`" for u in USAGE.values()))
    doc.context.append("Parameters are key=value; quote values with spaces. "
                       "`/train help COMMAND` for one command.")
    return doc
