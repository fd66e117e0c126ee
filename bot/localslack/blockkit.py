"""Reading Block Kit objects: the text of a text object, the options of a select.

Shared by the terminal's rendering and the modal values it submits. Standard library only.
"""

from __future__ import annotations

from typing import Any

__all__ = ["options_of", "text_of"]


def text_of(obj: Any) -> str:
    """The text of a text object (``{"type": "mrkdwn", "text": ...}``) or a plain string."""
    if isinstance(obj, dict):
        return str(obj.get("text", ""))
    return "" if obj is None else str(obj)


def options_of(element: dict[str, Any]) -> list[dict[str, Any]]:
    """A select's options, those in ``option_groups`` included, in order."""
    groups = element.get("option_groups") or []
    return list(element.get("options") or []) + [o for g in groups for o in g.get("options", [])]
