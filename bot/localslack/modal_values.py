"""The ``view.state.values`` a modal submission carries, built from ``KEY=VALUE`` text.

What ``/submit`` in the terminal client sends: for each input of the view, the value typed
or, as Slack does, its initial value. A ``file_input``'s value is ``{"type": "file_input",
"files": [<file objects>]}``; its text names the files (``@PATH`` or file ids, comma
separated), which the caller's ``files`` turns into file objects (the client uploads
``@PATH`` as the user). Standard library only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bot.localslack.blockkit import options_of, text_of

__all__ = ["FileResolver", "build_view_values"]

FileResolver = Callable[[str], dict[str, Any]]
"""Turns one name given to a ``file_input`` (``@PATH`` or a file id) into a file object;
``ValueError`` when it can't."""
MAX_FILES = 10  # a file_input's default and largest max_files

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


def _files(element: dict[str, Any], raw: str | None,
           resolve: FileResolver | None) -> list[dict[str, Any]]:
    """The files a ``file_input`` submits: what Slack's picker would take (``max_files``,
    ``filetypes``), and none when nothing is named (it has no initial value)."""
    names = [n.strip() for n in (raw or "").split(",") if n.strip()]
    if not names:
        return []
    if resolve is None:
        raise ValueError("this modal takes files: name them as KEY=@PATH")
    limit = element.get("max_files") or MAX_FILES
    if len(names) > limit:
        raise ValueError(f"at most {limit} file(s) here, got {len(names)}")
    files = [resolve(name) for name in names]
    allowed = [t.lower().lstrip(".") for t in element.get("filetypes") or []]
    for file in files:
        name = str(file.get("name", ""))
        ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
        if allowed and ext not in allowed:
            raise ValueError(f"{name} is not one of the accepted types: {', '.join(allowed)}")
    return files


def _element_state(element: dict[str, Any], raw: str | None,
                   resolve: FileResolver | None = None) -> dict[str, Any]:
    """One input's entry in ``view.state.values``, as Slack reports it (initial values count)."""
    kind = element.get("type", "plain_text_input")
    state: dict[str, Any] = {"type": kind}
    if kind == "file_input":
        state["files"] = _files(element, raw, resolve)
    elif kind in _ONE_OPTION:
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


def build_view_values(view: dict[str, Any], assignments: dict[str, str], *,
                      files: FileResolver | None = None) -> dict[str, Any]:
    """``view.state.values`` for submitting ``view`` with ``assignments`` (key → text).

    A key names an input block by its ``block_id`` or its element's ``action_id``; a
    ``file_input``'s text names files for ``files`` to resolve. Raises ``ValueError`` for a
    key no input has, a choice a select does not offer, or files its picker would refuse.
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
        short = block_id.split(":", 1)[1] if block_id.startswith("hp:") else block_id
        key = next((k for k in (block_id, action_id, short) if k in assignments), None)
        raw = assignments[key] if key is not None else None
        if key is not None:
            used.add(key)
        values.setdefault(block_id, {})[action_id] = _element_state(element, raw, files)
    unknown = sorted(set(assignments) - used)
    if unknown:
        raise ValueError(f"no input named {', '.join(unknown)}; inputs: {', '.join(values)}")
    return values

