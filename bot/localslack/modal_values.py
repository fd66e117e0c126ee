"""The ``view.state.values`` a modal submission carries, built from ``KEY=VALUE`` text.

What ``/submit`` in the terminal client sends: for each input of the view, the value typed
or, as Slack does, its initial value. Standard library only.
"""

from __future__ import annotations

from typing import Any

from bot.localslack.blockkit import options_of, text_of

__all__ = ["build_view_values"]

_ONE_OPTION = ("static_select", "external_select", "radio_buttons")
_MANY_OPTIONS = ("multi_static_select", "multi_external_select", "checkboxes")
_SELECTED = {"users_select": "selected_user", "conversations_select": "selected_conversation",
             "channels_select": "selected_channel", "datepicker": "selected_date",
             "timepicker": "selected_time"}


def _find_option(element: dict[str, Any], raw: str) -> dict[str, Any]:
    for option in options_of(element):
        if raw in (option.get("value"), text_of(option.get("text"))):
            return option
    choices = ", ".join(str(o.get("value")) for o in options_of(element))
    raise ValueError(f"{raw!r} is not one of: {choices}")


def _element_state(element: dict[str, Any], raw: str | None) -> dict[str, Any]:
    """One input's entry in ``view.state.values``, as Slack reports it (initial values count)."""
    kind = element.get("type", "plain_text_input")
    state: dict[str, Any] = {"type": kind}
    if kind in _ONE_OPTION:
        option = _find_option(element, raw) if raw is not None else element.get("initial_option")
        state["selected_option"] = option
    elif kind in _MANY_OPTIONS:
        chosen = ([_find_option(element, r.strip()) for r in raw.split(",") if r.strip()]
                  if raw is not None else element.get("initial_options") or [])
        state["selected_options"] = chosen
    elif kind in _SELECTED:
        initial_key = _SELECTED[kind].replace("selected_", "initial_")
        state[_SELECTED[kind]] = raw if raw is not None else element.get(initial_key)
    elif kind == "multi_users_select":
        state["selected_users"] = raw.split(",") if raw else element.get("initial_users", [])
    else:
        state["value"] = raw if raw is not None else element.get("initial_value")
    return state


def build_view_values(view: dict[str, Any], assignments: dict[str, str]) -> dict[str, Any]:
    """``view.state.values`` for submitting ``view`` with ``assignments`` (key → text).

    A key names an input block by its ``block_id`` or its element's ``action_id``. Raises
    ``ValueError`` for a key no input has or a choice a select does not offer.
    """
    values: dict[str, Any] = {}
    used: set[str] = set()
    for block in view.get("blocks", []):
        if block.get("type") != "input":
            continue
        element = block.get("element") or {}
        action_id = element.get("action_id") or "action"
        block_id = block.get("block_id") or action_id
        # trainbot's forms name hyperparameter inputs "hp:<name>"; `/submit lr=0.1` means hp:lr.
        short = block_id.split(":", 1)[1] if ":" in block_id else block_id
        key = next((k for k in (block_id, action_id, short) if k in assignments), None)
        raw = assignments[key] if key is not None else None
        if key is not None:
            used.add(key)
        values.setdefault(block_id, {})[action_id] = _element_state(element, raw)
    unknown = sorted(set(assignments) - used)
    if unknown:
        raise ValueError(f"no input named {', '.join(unknown)}; inputs: {', '.join(values)}")
    return values

