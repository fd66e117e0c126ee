"""Modal views generated from an algorithm's schema, and reading their submitted values.

Pure functions over dicts (no Slack calls), so they are unit-testable. Every view stays within
Slack's limits (https://api.slack.com/reference/surfaces/views,
https://api.slack.com/reference/block-kit/blocks#input): title, submit and close 24
characters, labels and hints 2,000, placeholders 150, 100 blocks, private metadata 3,000.
Menus over 100 options become external selects answered by :mod:`bot.slack.options`.
"""

from __future__ import annotations

import json
import math
from decimal import Decimal
from typing import Any

from bot.domain import Algorithm, HyperParameter, InvalidInput, Preset, ResourcePool
from bot.domain.algorithm import HPValue, HyperParameterType
from bot.slack import options as opt
from bot.slack.loading import TITLE_MAX, modal_title, shorten
from bot.slack.options import HP_BLOCK, MAX_OPTIONS, plain_text
from bot.views.mrkdwn import code, esc

__all__ = [
    "HP_BLOCK",
    "hyperparameter_view",
    "model_reason_view",
    "plain_number",
    "read_values",
    "reason_view",
    "rerun_title",
    "save_preset_view",
    "start_choice_view",
    "validate_form",
]

View = dict[str, Any]
# TITLE_MAX (24) also limits submit and close.
LABEL_MAX = 2000
HINT_MAX = 2000
PLACEHOLDER_MAX = 150
METADATA_MAX = 3000
MAX_BLOCKS = 100
DATA_FILE_BLOCK = "data_file:"
DATA_URI_BLOCK = "data_uri:"
DATA_CHANNELS_SHOWN = 8  # two blocks each; hyperparameters get the rest
# What a file input offers; the inbox checks the type again (bot.adapters.slack_files).
DATA_FILE_TYPES = ("csv", "tsv", "json", "jsonl", "txt", "parquet", "npz", "npy", "zip", "gz")


def _label(t: str) -> dict[str, Any]:
    return plain_text(t, LABEL_MAX)


def _hint(t: str) -> dict[str, Any]:
    return plain_text(t, HINT_MAX)


def rerun_title(job: str, number: int) -> str:
    """"Rerun <job> v<n>" in a modal title's 24 characters: the job name is shortened, the
    version kept."""
    tail = f" v{number}"
    room = TITLE_MAX - len("Rerun ") - len(tail)
    return "Rerun " + shorten(job, room) + tail


def _modal(callback_id: str, title: str, blocks: list[dict], meta: dict, submit: str) -> View:
    metadata = json.dumps(meta)
    if len(metadata) > METADATA_MAX:
        # Cutting JSON would make it unreadable on submit: better to fail here, loudly.
        raise ValueError(f"private_metadata is {len(metadata)} characters (max {METADATA_MAX})")
    if len(blocks) > MAX_BLOCKS:
        raise ValueError(f"a modal holds at most {MAX_BLOCKS} blocks, not {len(blocks)}")
    return {
        "type": "modal", "callback_id": callback_id,
        "title": modal_title(title),
        "submit": plain_text(submit, TITLE_MAX), "close": plain_text("Cancel", TITLE_MAX),
        "private_metadata": metadata, "blocks": blocks,
    }


def _select(options: list[dict], initial: dict | None = None) -> dict[str, Any]:
    el: dict[str, Any] = {"type": "static_select", "action_id": "value", "options": options}
    if initial is not None:
        el["initial_option"] = initial
    return el


def _external(placeholder: str, initial: dict | None = None) -> dict[str, Any]:
    """A menu Slack fills from the options listener (:func:`bot.slack.options.options_for`),
    for lists over 100. ``min_query_length: 0`` lists options before anything is typed."""
    el: dict[str, Any] = {"type": "external_select", "action_id": opt.ACTION_ID,
                          "min_query_length": 0,
                          "placeholder": plain_text(placeholder, PLACEHOLDER_MAX)}
    if initial is not None:
        el["initial_option"] = initial
    return el


def start_choice_view(algorithms: list[Algorithm], pools: list[ResourcePool],
                      presets: list[Preset], meta: dict) -> View:
    """Step 1 of the start form: an algorithm (a preset one or the team's own) or a saved
    preset, and a pool."""
    groups = opt.source_groups(algorithms, presets)
    if 0 < len(algorithms) + len(presets) <= MAX_OPTIONS:
        source: dict[str, Any] = {"type": "static_select", "action_id": "value",
                                  "option_groups": groups}
    else:
        source = _external("Type to search algorithms and presets")
    choices = [opt.pool_option(p.id, p.instance_type) for p in pools]
    pool = _select(choices) if len(choices) <= MAX_OPTIONS else _external("Type to search pools")
    blocks: list[dict[str, Any]] = [
        {"type": "input", "block_id": opt.SOURCE_BLOCK, "label": _label("Algorithm or preset"),
         "element": source},
        {"type": "input", "block_id": opt.POOL_BLOCK, "label": _label("Resource pool"),
         "optional": True, "hint": _hint("Empty: the preset's pool or the default."),
         "element": pool},
        {"type": "input", "block_id": "name", "label": _label("Job name"), "optional": True,
         "element": {"type": "plain_text_input", "action_id": "value", "max_length": 40}},
    ]
    return _modal("start_choose", "Start training", blocks, meta, "Next")


def plain_number(value: int | float | str) -> str:
    """A number as Slack's ``number_input`` reads it: plain decimal digits, never exponent
    notation (``1e-06`` → ``0.000001``, ``1e21`` → ``1000000000000000000000``), integers
    without a fraction, and float noise rounded off (``0.1 + 0.2`` → ``0.3``).

    Raises ``ValueError`` for what is not a finite number.
    """
    if isinstance(value, bool):
        raise ValueError(f"not a number: {value!r}")
    if isinstance(value, int):
        return str(value)
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"not a finite number: {value!r}")
    # 15 significant digits survive any decimal → binary → decimal trip, so cutting repr's
    # 17 back to 15 drops only binary noise such as 0.30000000000000004.
    d = Decimal(repr(number))
    if len(d.as_tuple().digits) > 15:
        d = Decimal(format(number, ".15g"))
    if d == 0:
        return "0"
    text = format(d, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _number_element(hp: HyperParameter, current: HPValue) -> dict[str, Any]:
    integer = hp.type is HyperParameterType.INT
    el: dict[str, Any] = {"type": "number_input", "action_id": "value",
                          "is_decimal_allowed": not integer}
    # Integer bounds round inwards: min 0.5 allows 1, not 0.
    if hp.min is not None:
        el["min_value"] = plain_number(math.ceil(hp.min) if integer else hp.min)
    if hp.max is not None:
        el["max_value"] = plain_number(math.floor(hp.max) if integer else hp.max)
    number = _as_number(current, integer=integer)
    if number is not None:  # Slack refuses an initial value it can't read: leave it empty
        el["initial_value"] = plain_number(number)
    return el


def _as_number(value: HPValue, *, integer: bool) -> int | float | None:
    """``value`` as a number, range unchecked: a rerun shows the old value even when the
    manifest's range has since moved (the form then says what's wrong)."""
    if isinstance(value, bool):
        return None
    if integer:
        try:
            return int(str(value).strip(), 10)
        except ValueError:
            pass
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(number) or (integer and not number.is_integer()):
        return None
    return int(number) if integer else number


def _element(hp: HyperParameter, current: HPValue) -> dict[str, Any]:
    if hp.type in (HyperParameterType.INT, HyperParameterType.FLOAT):
        return _number_element(hp, current)
    if hp.type is HyperParameterType.BOOL:
        options = [opt.option("true"), opt.option("false")]
        return _select(options, options[0 if current else 1])
    if hp.type is HyperParameterType.CHOICE:
        choices = hp.choices or []
        index = choices.index(str(current)) if str(current) in choices else 0
        if len(choices) <= MAX_OPTIONS:
            options = opt.choice_options(hp)
            return _select(options, options[index])
        return _external(f"Type to search {len(choices)} choices", opt.choice_option(hp, index))
    return {"type": "plain_text_input", "action_id": "value", "initial_value": str(current),
            "max_length": 256}


def hyperparameter_view(algorithm: Algorithm, current: dict[str, HPValue], meta: dict, *,
                        callback_id: str, title: str, pools: list[str] | None = None,
                        pool: str | None = None, data: dict[str, str] | None = None,
                        data_origin: dict[str, str] | None = None) -> View:
    """One input per hyperparameter, default (or current) filled, help as the hint.

    The algorithm's id (and a registered algorithm's digest: that exact version) goes into
    the private metadata: the options listener reads it to list a long choice menu.
    Hyperparameters past the 100-block limit aren't shown (a note says so) and keep their
    current values.
    """
    title_line = f"*{esc(opt.clip(algorithm.title, 200))}* ({code(algorithm.id)} " \
        f"{esc(algorithm.version)})"
    blocks: list[dict] = [{"type": "section", "text": {"type": "mrkdwn", "text": title_line}}]
    if pools:
        options = [opt.pool_option(p) for p in pools]
        initial = options[pools.index(pool)] if pool in pools else None
        pool_el = _select(options, initial) if len(options) <= MAX_OPTIONS else \
            _external("Type to search pools", initial)
        blocks.append({"type": "input", "block_id": opt.POOL_BLOCK,
                       "label": _label("Resource pool"), "element": pool_el})
    blocks += data_blocks(algorithm, data or {}, data_origin or {})
    hps = algorithm.hyperparameters
    room = MAX_BLOCKS - len(blocks)
    if len(hps) > room:
        room -= 1  # for the note
    for hp in hps[:room]:
        hint = (hp.help + " " if hp.help else "") + f"({hp.describe_range()})"
        blocks.append({
            "type": "input", "block_id": HP_BLOCK + hp.name, "label": _label(hp.name),
            "hint": _hint(hint), "element": _element(hp, current.get(hp.name, hp.default)),
        })
    if len(hps) > room:
        hidden = ", ".join(code(hp.name) for hp in hps[room:])
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": opt.clip(
            f"{len(hps) - room} more hyperparameters aren't shown and keep their values (set "
            f"them with key=value after `/train start` or `/train rerun`): {hidden}", 3000,
            breaks=", ")}]})
    meta = {k: v for k, v in meta.items() if k != "digest"} | {"algorithm": algorithm.id}
    if algorithm.source is not None:
        meta["digest"] = algorithm.source.digest
    return _modal(callback_id, title, blocks, meta, "Launch")


def data_blocks(algorithm: Algorithm, current: dict[str, str],
                origin: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Per data channel: a file shared in Slack (``file_input``: one file, ≤ 10 MB as Slack
    allows) or a URI. Both empty keeps what the version has (or the channel's default); a
    Slack file it has is shown by name, never by where trainbot keeps it."""
    blocks: list[dict[str, Any]] = []
    origin = origin or {}
    for channel in algorithm.channels[:DATA_CHANNELS_SHOWN]:
        keeps = origin.get(channel.name) or current.get(channel.name) or channel.default
        hint = ("s3://bucket/prefix, or a path under the bot's data folder. "
                + (f"Empty keeps {keeps}." if keeps else "Empty: no data for this channel."))
        uri: dict[str, Any] = {"type": "plain_text_input", "action_id": "value",
                               "max_length": 1000}
        if current.get(channel.name) and channel.name not in origin:
            uri["initial_value"] = current[channel.name][:1000]
        blocks += [
            {"type": "input", "block_id": DATA_FILE_BLOCK + channel.name, "optional": True,
             "label": _label(opt.clip(f"{channel.name} data: a file", 2000)),
             "element": {"type": "file_input", "action_id": "value", "max_files": 1,
                         "filetypes": list(DATA_FILE_TYPES)}},
            {"type": "input", "block_id": DATA_URI_BLOCK + channel.name, "optional": True,
             "label": _label(opt.clip(f"{channel.name} data: or a URI", 2000)),
             "hint": _hint(opt.clip(hint, 2000)), "element": uri},
        ]
    return blocks


def read_data(values: dict[str, str], current: dict[str, str] | None = None
              ) -> tuple[dict[str, str], dict[str, str]]:
    """``(data, errors)`` from the data section: a file id (``F…``, fetched when the form's
    command runs) or a URI per channel; a URI equal to ``current``'s is no change."""
    data: dict[str, str] = {}
    errors: dict[str, str] = {}
    for block_id, raw in values.items():
        if block_id.startswith(DATA_FILE_BLOCK) and raw:
            name = block_id[len(DATA_FILE_BLOCK):]
            if (values.get(DATA_URI_BLOCK + name) or "").strip() not in (
                    "", (current or {}).get(name, "")):
                errors[block_id] = f"Give a file or a URI for {name}, not both."
            data[name] = raw
    for block_id, raw in values.items():
        if block_id.startswith(DATA_URI_BLOCK):
            name = block_id[len(DATA_URI_BLOCK):]
            uri = (raw or "").strip()
            if name not in data and uri and uri != (current or {}).get(name):
                data[name] = uri
    return data, errors


def _reason_blocks() -> list[dict]:
    return [{"type": "input", "block_id": "reason", "label": _label("Why reject?"),
             "element": {"type": "plain_text_input", "action_id": "value", "multiline": True,
                         "max_length": 500}}]


def reason_view(approval_id: str, meta: dict) -> View:
    return _modal("reject_reason", "Reject request", _reason_blocks(),
                  {**meta, "approval": approval_id}, "Reject")


def model_reason_view(group: str, number: int, meta: dict) -> View:
    """Why a model version is rejected (the submission is `/train model reject`)."""
    return _modal("reject_model_reason", "Reject model", _reason_blocks(),
                  {**meta, "group": group, "number": number}, "Reject")


def save_preset_view(meta: dict) -> View:
    blocks: list[dict[str, Any]] = [
        {"type": "input", "block_id": "name", "label": _label("Preset name"),
         "hint": _hint("1-64 letters, digits, - or _. Can't be changed later."),
         "element": {"type": "plain_text_input", "action_id": "value", "max_length": 64}},
        {"type": "input", "block_id": "description", "label": _label("Description"),
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
            elif state.get("type") == "file_input" and state.get("files"):
                out[block_id] = str(state["files"][0].get("id") or "")
    return out


def validate_form(
    algorithm: Algorithm, values: dict[str, str]
) -> tuple[dict[str, str], dict[str, str]]:
    """Split hyperparameter inputs into ``(params, errors)``; errors are keyed by block_id.

    A choice comes back as its option value, which stands for a long choice by index
    (:func:`bot.slack.options.choice_value`): params hold the choice itself.
    """
    params: dict[str, str] = {}
    errors: dict[str, str] = {}
    for block_id, raw in values.items():
        if not block_id.startswith(HP_BLOCK):
            continue
        name = block_id[len(HP_BLOCK):]
        try:
            hp = algorithm.hyperparameter(name)
            value = opt.choice_from_value(hp, raw) if hp.choices else raw
            hp.coerce(value)
            params[name] = value
        except InvalidInput as exc:
            errors[block_id] = exc.message[:150]
    return params, errors
