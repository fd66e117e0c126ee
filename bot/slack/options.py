"""Select-menu options: building Slack option objects, and answering an options request.

A static select takes at most 100 options
(https://api.slack.com/reference/block-kit/block-elements#static_select). The forms switch
a menu to an ``external_select`` whose action_id is :data:`ACTION_ID` when it would need
more, and Slack then asks for options as the user types
(https://api.slack.com/reference/block-kit/block-elements#external_select): the listener
registered with ``app.options(ACTION_ID)`` answers with ``ack(**options_for_request(...))``.
Every answer is filtered by the typed text and holds at most 100 options, whatever the groups.

Option limits (https://api.slack.com/reference/block-kit/composition-objects#option): text
75 characters, value 150. Texts are shortened; values never are — a value is what comes back
on submit, so it must be exact (:func:`choice_value` maps a long choice to an index instead).

Light at import (no pydantic, no yaml): ``bot.slack.app`` may import :data:`ACTION_ID` on the
ack path.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bot.domain.errors import TrainbotError

if TYPE_CHECKING:
    from bot.domain import Algorithm, HyperParameter, Preset, ResourcePool

__all__ = [
    "ACTION_ID",
    "HP_BLOCK",
    "MAX_OPTIONS",
    "POOL_BLOCK",
    "SOURCE_BLOCK",
    "Menus",
    "algorithm_option",
    "choice_from_value",
    "choice_option",
    "choice_options",
    "choice_value",
    "clip",
    "option",
    "options_for",
    "options_for_request",
    "plain_text",
    "pool_option",
    "pool_options",
    "preset_option",
    "source_groups",
]

# The action_id of every external select the forms build; the block_id says which menu it is.
ACTION_ID = "trainbot_options"
SOURCE_BLOCK = "source"  # start form step 1: "algo:<id>" or "preset:<name>"
POOL_BLOCK = "pool"  # a pool id
HP_BLOCK = "hp:"  # + hyperparameter name: one of its choices (see choice_value)

MAX_OPTIONS = 100
OPTION_TEXT_MAX = 75
OPTION_VALUE_MAX = 150
ALGORITHM_PREFIX = "algo:"
PRESET_PREFIX = "preset:"
_INDEX_VALUE = re.compile(r"#(\d+)")

Option = dict[str, Any]


def clip(text: str, limit: int, *, breaks: str = " ") -> str:
    """``text`` in at most ``limit`` characters: cut at the last of ``breaks`` (when that keeps
    at least half) and end with "…"."""
    if len(text) <= limit:
        return text
    head = text[: limit - 1]
    cut = max(head.rfind(c) for c in breaks)
    if cut >= limit // 2:
        head = head[:cut]
    return head.rstrip(" " + breaks) + "…"


def plain_text(text: str, limit: int) -> dict[str, Any]:
    """A ``plain_text`` object clipped to ``limit`` (Slack rejects an empty one)."""
    return {"type": "plain_text", "text": clip(text, limit) or " ", "emoji": True}


def option(value: str, text: str | None = None) -> Option:
    """An option object. Raises ``ValueError`` for a value Slack would refuse: values are
    never shortened, since a shortened value would submit something else."""
    if not 1 <= len(value) <= OPTION_VALUE_MAX:
        raise ValueError(f"option value must be 1-{OPTION_VALUE_MAX} characters: {value!r:.60}")
    return {"text": plain_text(value if text is None else text, OPTION_TEXT_MAX), "value": value}


def algorithm_option(algorithm: Algorithm) -> Option:
    """``algo:<id>``; a team's own (registered) algorithm says so in its text."""
    text = algorithm.title or algorithm.id
    return option(ALGORITHM_PREFIX + algorithm.id,
                  f"{text} (custom)" if algorithm.source is not None else text)


def preset_option(preset: Preset) -> Option:
    return option(PRESET_PREFIX + preset.name, preset.name)


def pool_option(pool_id: str, instance_type: str | None = None) -> Option:
    return option(pool_id, f"{pool_id} — {instance_type}" if instance_type else pool_id)


def choice_value(hp: HyperParameter, index: int) -> str:
    """The option value for ``hp.choices[index]``: the choice itself, or ``#<index>`` when the
    choice can't be a value (empty or over 150 characters). :func:`choice_from_value` reverses
    it."""
    choices = hp.choices or []
    choice = choices[index]
    if 1 <= len(choice) <= OPTION_VALUE_MAX:
        return choice
    token = f"#{index}"
    if token in choices:
        raise ValueError(f"{hp.name}: choice {index} is too long for Slack and {token!r} is "
                         "itself a choice, so the form can't tell them apart")
    return token


def choice_from_value(hp: HyperParameter, raw: str) -> str:
    """The choice a submitted option value stands for (``raw`` itself when it is no token)."""
    choices = hp.choices or []
    if raw in choices:
        return raw
    m = _INDEX_VALUE.fullmatch(raw)
    if m and int(m.group(1)) < len(choices):
        index = int(m.group(1))
        if choice_value(hp, index) == raw:
            return choices[index]
    return raw


def choice_option(hp: HyperParameter, index: int) -> Option:
    """The option for ``hp.choices[index]``."""
    choice = (hp.choices or [])[index]
    return option(choice_value(hp, index), choice or "(empty)")


def _matches(query: str, *texts: str) -> bool:
    q = query.strip().casefold()
    return not q or any(q in t.casefold() for t in texts)


def choice_options(hp: HyperParameter, query: str = "") -> list[Option]:
    """Every choice of ``hp`` that matches ``query`` (all of them for ``""``)."""
    return [choice_option(hp, i) for i, c in enumerate(hp.choices or []) if _matches(query, c)]


def pool_options(pools: Iterable[ResourcePool], query: str = "") -> list[Option]:
    return [pool_option(p.id, p.instance_type) for p in pools
            if _matches(query, p.id, p.instance_type, p.description)]


def _shares(sizes: Sequence[int], total: int) -> list[int]:
    """Split ``total`` places between groups one at a time, so a big group can't crowd a
    small one out of the menu."""
    shares = [0] * len(sizes)
    while total and any(s < n for s, n in zip(shares, sizes, strict=True)):
        for i, n in enumerate(sizes):
            if total and shares[i] < n:
                shares[i] += 1
                total -= 1
    return shares


def source_groups(algorithms: Iterable[Algorithm], presets: Iterable[Preset],
                  query: str = "") -> list[dict[str, Any]]:
    """The "Algorithms" and "Presets" groups for the start form's source menu: at most
    :data:`MAX_OPTIONS` options in all (Slack's limit for one menu), empty groups left out.
    A group that didn't fit whole says how many it shows, so the user knows to type."""
    found = [
        ("Algorithms", [algorithm_option(a) for a in algorithms
                        if _matches(query, a.id, a.title)]),
        ("Presets", [preset_option(p) for p in presets if _matches(query, p.name)]),
    ]
    groups = []
    for (label, opts), share in zip(found, _shares([len(o) for _, o in found], MAX_OPTIONS),
                                    strict=True):
        if not opts:
            continue
        if share < len(opts):
            label = f"{label} ({share} of {len(opts)}, type to narrow)"
        groups.append({"label": plain_text(label, OPTION_TEXT_MAX), "options": opts[:share]})
    return groups


@dataclass(frozen=True)
class Menus:
    """What the forms' menus offer, read when Slack asks (a team's algorithm registered a
    second ago is there): ``algorithms`` the offered ones (presets and visible registered
    ones), ``presets`` the saved ones, ``pools`` the pools, and ``algorithm_of`` the
    algorithm a form was built for, from its private metadata (None if it's gone)."""

    algorithms: Callable[[], Iterable[Algorithm]]
    pools: Iterable[ResourcePool]
    presets: Callable[[], Iterable[Preset]]
    algorithm_of: Callable[[dict[str, Any]], Algorithm | None]


def options_for(menus: Menus, *, block_id: str, query: str,
                meta: dict[str, Any]) -> dict[str, Any]:
    """The body of the answer to an options request for one of the forms' external selects.

    ``block_id`` names the menu (:data:`SOURCE_BLOCK`, :data:`POOL_BLOCK`, or
    :data:`HP_BLOCK` + a choice hyperparameter's name, whose algorithm the view's private
    metadata ``meta`` names); ``query`` is what the user typed, matched case-insensitively
    anywhere in an option's text; algorithms and presets are read only for the source menu.
    An unknown menu or algorithm answers no options.
    """
    if block_id == SOURCE_BLOCK:
        return {"option_groups": source_groups(menus.algorithms(), menus.presets(), query)}
    if block_id == POOL_BLOCK:
        return {"options": pool_options(menus.pools, query)[:MAX_OPTIONS]}
    if block_id.startswith(HP_BLOCK):
        try:
            algorithm = menus.algorithm_of(meta)
        except TrainbotError:
            algorithm = None
        name = block_id[len(HP_BLOCK):]
        hp = next((h for h in algorithm.hyperparameters if h.name == name),
                  None) if algorithm is not None else None
        if hp is not None and hp.choices:
            return {"options": choice_options(hp, query)[:MAX_OPTIONS]}
    return {"options": []}


def options_for_request(menus: Menus, body: dict[str, Any]) -> dict[str, Any]:
    """:func:`options_for` for a ``block_suggestion`` payload (``block_id``, ``value``, and
    the view's ``private_metadata``)."""
    try:
        meta = json.loads((body.get("view") or {}).get("private_metadata") or "{}")
    except ValueError:
        meta = {}
    return options_for(menus, block_id=str(body.get("block_id", "")),
                       query=str(body.get("value") or ""),
                       meta=meta if isinstance(meta, dict) else {})
