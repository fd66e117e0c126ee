"""Modal views generated from an algorithm's schema, and reading their submitted values.

Pure functions over dicts (no Slack calls), so they are unit-testable.
"""

from __future__ import annotations

import json
from typing import Any

from bot.catalog import Catalog
from bot.domain import Algorithm, HyperParameter, InvalidInput, Preset
from bot.domain.algorithm import HPValue, HyperParameterType

__all__ = [
    "hyperparameter_view",
    "read_values",
    "reason_view",
    "save_preset_view",
    "start_choice_view",
    "validate_form",
]

HP_BLOCK = "hp:"
View = dict[str, Any]


def _text(t: str) -> dict[str, str]:
    return {"type": "plain_text", "text": t[:150], "emoji": True}


def _option(value: str, label: str | None = None) -> dict[str, Any]:
    return {"text": _text(label or value), "value": value[:150]}


def _modal(callback_id: str, title: str, blocks: list[dict], meta: dict, submit: str) -> View:
    return {
        "type": "modal", "callback_id": callback_id, "title": _text(title[:24]),
        "submit": _text(submit), "close": _text("Cancel"),
        "private_metadata": json.dumps(meta)[:3000], "blocks": blocks[:100],
    }


def start_choice_view(catalog: Catalog, presets: list[Preset], meta: dict) -> View:
    """Step 1 of the start form: an algorithm or a preset, and a pool."""
    algorithms = [_option(f"algo:{a.id}", a.title[:75]) for a in catalog.algorithms.values()]
    groups = [{"label": _text("Algorithms"), "options": algorithms}]
    if presets:
        groups.append({"label": _text("Presets"),
                       "options": [_option(f"preset:{p.name}", p.name) for p in presets[:100]]})
    blocks = [
        {"type": "input", "block_id": "source", "label": _text("Algorithm or preset"),
         "element": {"type": "static_select", "action_id": "value", "option_groups": groups}},
        {"type": "input", "block_id": "pool", "label": _text("Resource pool"), "optional": True,
         "hint": _text("Empty: the preset's pool or the default."),
         "element": {"type": "static_select", "action_id": "value",
                     "options": [_option(p.id, f"{p.id} — {p.instance_type}")
                                 for p in catalog.pools.values()]}},
        {"type": "input", "block_id": "name", "label": _text("Job name"), "optional": True,
         "element": {"type": "plain_text_input", "action_id": "value", "max_length": 40}},
    ]
    return _modal("start_choose", "Start training", blocks, meta, "Next")


def _element(hp: HyperParameter, current: HPValue) -> dict[str, Any]:
    if hp.type in (HyperParameterType.INT, HyperParameterType.FLOAT):
        el: dict[str, Any] = {"type": "number_input", "action_id": "value",
                              "is_decimal_allowed": hp.type is HyperParameterType.FLOAT,
                              "initial_value": str(current)}
        if hp.min is not None:
            el["min_value"] = str(int(hp.min) if hp.type is HyperParameterType.INT else hp.min)
        if hp.max is not None:
            el["max_value"] = str(int(hp.max) if hp.type is HyperParameterType.INT else hp.max)
        return el
    if hp.type is HyperParameterType.BOOL:
        options = [_option("true"), _option("false")]
        return {"type": "static_select", "action_id": "value", "options": options,
                "initial_option": options[0 if current else 1]}
    if hp.type is HyperParameterType.CHOICE:
        options = [_option(c) for c in hp.choices or []]
        initial = next((o for o in options if o["value"] == str(current)), options[0])
        return {"type": "static_select", "action_id": "value", "options": options,
                "initial_option": initial}
    return {"type": "plain_text_input", "action_id": "value", "initial_value": str(current),
            "max_length": 256}


def hyperparameter_view(algorithm: Algorithm, current: dict[str, HPValue], meta: dict, *,
                        callback_id: str, title: str, pools: list[str] | None = None,
                        pool: str | None = None) -> View:
    """One input per hyperparameter, default (or current) filled, help as the hint."""
    blocks: list[dict] = [{"type": "section", "text": {"type": "mrkdwn", "text": (
        f"*{algorithm.title}* (`{algorithm.id}` {algorithm.version})")[:3000]}}]
    if pools:
        options = [_option(p) for p in pools]
        pool_el: dict[str, Any] = {"type": "static_select", "action_id": "value",
                                   "options": options}
        if pool in pools:
            pool_el["initial_option"] = options[pools.index(pool)]
        blocks.append({"type": "input", "block_id": "pool", "label": _text("Resource pool"),
                       "element": pool_el})
    for hp in algorithm.hyperparameters[:95]:
        block: dict[str, Any] = {
            "type": "input", "block_id": HP_BLOCK + hp.name, "label": _text(hp.name),
            "element": _element(hp, current.get(hp.name, hp.default)),
        }
        hint = (hp.help + " " if hp.help else "") + f"({hp.describe_range()})"
        block["hint"] = _text(hint)
        blocks.append(block)
    return _modal(callback_id, title, blocks, meta, "Launch")


def reason_view(approval_id: str, meta: dict) -> View:
    blocks = [{"type": "input", "block_id": "reason", "label": _text("Why reject?"),
               "element": {"type": "plain_text_input", "action_id": "value", "multiline": True,
                           "max_length": 500}}]
    return _modal("reject_reason", "Reject request", blocks, {**meta, "approval": approval_id},
                  "Reject")


def save_preset_view(meta: dict) -> View:
    blocks = [
        {"type": "input", "block_id": "name", "label": _text("Preset name"),
         "hint": _text("1-64 letters, digits, - or _. Can't be changed later."),
         "element": {"type": "plain_text_input", "action_id": "value", "max_length": 64}},
        {"type": "input", "block_id": "description", "label": _text("Description"),
         "optional": True,
         "element": {"type": "plain_text_input", "action_id": "value", "max_length": 256}},
    ]
    return _modal("save_preset", "Save as preset", blocks, meta, "Save")


def read_values(view: dict) -> dict[str, str]:
    """``{block_id: value}`` from a submitted view's state (selects and inputs alike)."""
    out: dict[str, str] = {}
    for block_id, actions in (view.get("state", {}).get("values") or {}).items():
        for state in actions.values():
            if state.get("selected_option"):
                out[block_id] = state["selected_option"]["value"]
            elif state.get("value") is not None:
                out[block_id] = state["value"]
    return out


def validate_form(
    algorithm: Algorithm, values: dict[str, str]
) -> tuple[dict[str, str], dict[str, str]]:
    """Split hyperparameter inputs into ``(params, errors)``; errors are keyed by block_id."""
    params: dict[str, str] = {}
    errors: dict[str, str] = {}
    for block_id, raw in values.items():
        if not block_id.startswith(HP_BLOCK):
            continue
        name = block_id[len(HP_BLOCK):]
        try:
            algorithm.hyperparameter(name).coerce(raw)
            params[name] = raw
        except InvalidInput as exc:
            errors[block_id] = exc.message[:150]
    return params, errors
