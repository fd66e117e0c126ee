from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest
from slack_sdk.models.blocks import Option, OptionGroup
from slack_sdk.models.views import View

from bot.catalog import Catalog, load_pools
from bot.domain import Algorithm, HyperParameter, JobSpec, Preset, ResourcePool
from bot.slack import forms, loading, options
from tests.unit.conftest import ALGO

LONG_WORDS = "Gradient boosted decision trees with early stopping and class weights " * 3
LONG_CHOICE = "x" * 200  # too long to be an option value
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _algo(i: int, **hp_overrides: Any) -> Algorithm:
    return ALGO.model_copy(update={"id": f"algo-{i}", "title": f"{i} {LONG_WORDS}",
                                   **hp_overrides})


def _preset(i: int) -> Preset:
    spec = JobSpec(algorithm="toy", algorithm_version="1.0.0", pool="local-cpu")
    return Preset(name=f"preset-{i}", scope="T1", spec=spec, owner="U1", created_at=T0,
                  updated_at=T0)


def _pools(n: int) -> dict[str, ResourcePool]:
    return {f"pool-{i}": ResourcePool(id=f"pool-{i}", instance_type="ml.g5.xlarge " * 10)
            for i in range(n)}


MANY_CHOICES = Algorithm.model_validate({
    **ALGO.model_dump(), "id": "wide", "title": LONG_WORDS,
    "hyperparameters": [
        {"name": "arch", "type": "choice", "choices": [f"arch-{i}" for i in range(250)],
         "default": "arch-0", "help": LONG_WORDS * 20},
        {"name": "tiny_lr", "type": "float", "default": 1e-6, "min": 1e-12, "max": 1e21},
        {"name": "mode", "type": "choice", "choices": ["fast", LONG_CHOICE],
         "default": LONG_CHOICE},
    ],
})


def _walk(node: Any, key: str) -> list[Any]:
    """Every value stored under ``key`` anywhere in ``node``."""
    found = []
    if isinstance(node, dict):
        for k, v in node.items():
            if k == key:
                found.append(v)
            found += _walk(v, key)
    elif isinstance(node, list):
        for v in node:
            found += _walk(v, key)
    return found


def _slack_valid(view: dict) -> None:
    """What real Slack checks: slack_sdk validates the view and its blocks and elements
    (``to_dict`` recurses), but keeps option objects as dicts, so those are checked here."""
    View(**view).validate_json()
    View(**view).to_dict()
    for opts in _walk(view, "options"):
        assert len(opts) <= 100
        for o in opts:
            Option(**o).validate_json()
    for groups in _walk(view, "option_groups"):
        assert sum(len(g["options"]) for g in groups) <= 100
        for g in groups:
            OptionGroup(**g).validate_json()
    for initial in _walk(view, "initial_option"):
        Option(**initial).validate_json()
    for placeholder in _walk(view, "placeholder"):
        assert len(placeholder["text"]) <= 150
    json.loads(view["private_metadata"])


def _start_choice(catalog: Catalog, presets: list[Preset], meta: dict) -> dict:
    return forms.start_choice_view(list(catalog.algorithms.values()),
                                   list(catalog.pools.values()), presets, meta)


def _big_catalog() -> Catalog:
    algorithms = {a.id: a for a in (_algo(i) for i in range(150))}
    return Catalog(algorithms={**algorithms, "wide": MANY_CHOICES}, pools=_pools(120))


def _every_view(catalog: Catalog, presets: list[Preset]) -> list[dict]:
    pools = list(catalog.pools)
    return [
        _start_choice(catalog, presets, {"channel": "C1"}),
        *(forms.hyperparameter_view(a, a.defaults(), {"channel": "C1"}, callback_id="start_form",
                                    title="Start training", pools=pools, pool=pools[-1])
          for a in (ALGO, MANY_CHOICES)),
        forms.hyperparameter_view(MANY_CHOICES, {}, {"job": "j", "version": 1},
                                  callback_id="rerun_form",
                                  title=forms.rerun_title("tabular-classification-exp", 12)),
        forms.reason_view("abcd1234", {"channel": "C1"}),
        forms.save_preset_view({"job": "j", "version": 1}),
    ]


@pytest.mark.parametrize("size", ["small", "large"])
def test_every_view_passes_slack_sdk_validation(size: str) -> None:
    if size == "small":
        catalog, presets = Catalog(algorithms={"toy": ALGO}, pools=load_pools()), [_preset(1)]
    else:
        catalog, presets = _big_catalog(), [_preset(i) for i in range(130)]
    for view in _every_view(catalog, presets):
        _slack_valid(view)


def test_form_has_one_typed_input_per_hyperparameter() -> None:
    view = forms.hyperparameter_view(ALGO, {"epochs": 7}, {}, callback_id="start_form",
                                     title="Start", pools=["local-cpu", "gpu-1"], pool="gpu-1")
    by_id = {b.get("block_id"): b for b in view["blocks"]}
    assert by_id["hp:epochs"]["element"]["type"] == "number_input"
    assert by_id["hp:epochs"]["element"]["initial_value"] == "7"
    assert by_id["hp:lr"]["element"]["is_decimal_allowed"] is True
    assert by_id["hp:optimizer"]["element"]["type"] == "static_select"
    assert by_id["hp:amp"]["element"]["initial_option"]["value"] == "true"
    assert by_id["pool"]["element"]["initial_option"]["value"] == "gpu-1"
    assert "[1, 100]" in by_id["hp:epochs"]["hint"]["text"]


def test_option_text_is_clipped_to_75_at_a_word_boundary() -> None:
    catalog = Catalog(algorithms={"a": _algo(1)}, pools=load_pools())
    view = _start_choice(catalog, [], {})
    (opt,) = view["blocks"][0]["element"]["option_groups"][0]["options"]
    text = opt["text"]["text"]
    assert len(text) <= 75 and text.endswith("…")
    assert LONG_WORDS.startswith(text[2:-1] + " ")  # whole words only
    assert opt["value"] == "algo:algo-1"


def test_a_choice_too_long_for_an_option_value_maps_back_exactly() -> None:
    view = forms.hyperparameter_view(MANY_CHOICES, MANY_CHOICES.defaults(), {},
                                     callback_id="start_form", title="Start")
    el = next(b for b in view["blocks"] if b.get("block_id") == "hp:mode")["element"]
    assert all(len(o["value"]) <= 150 for o in el["options"])
    chosen = el["initial_option"]["value"]
    assert chosen != LONG_CHOICE[:150]
    state = {"state": {"values": {"hp:mode": {"value": {"selected_option": {"value": chosen}}}}}}
    params, errors = forms.validate_form(MANY_CHOICES, forms.read_values(state))
    assert (params, errors) == ({"mode": LONG_CHOICE}, {})


def test_modal_title_is_cut_between_words() -> None:
    view = forms.hyperparameter_view(ALGO, {}, {}, callback_id="rerun_form",
                                     title="Rerun tabular-classification v2")
    assert view["title"]["text"] == "Rerun tabular-…"


@pytest.mark.parametrize(("job", "number", "title"), [
    ("digits", 2, "Rerun digits v2"),
    ("tabular-classification", 2, "Rerun tabular-… v2"),
    ("tabular-classification-exp", 12, "Rerun tabular-… v12"),
    ("image_classification.resnet", 7, "Rerun image_… v7"),
    ("abcdefghijklmnopqrstuvwxyz", 3, "Rerun abcdefghijklmn… v3"),  # no break: cut in it
])
def test_rerun_title_keeps_the_version_and_whole_words(job: str, number: int,
                                                       title: str) -> None:
    assert forms.rerun_title(job, number) == title
    assert len(title) <= 24


TITLES = [
    "Rerun tabular-classification v3", "Rerun image-classification-resnet50-finetune v12",
    "Reject request from a very long name", "Save preset nightly_digits.resnet",
    "Rerun abcdefghijklmnopqrstuvwxyz v3", "Start training", "Rerun",
]


@pytest.mark.parametrize("title", TITLES)
def test_modal_titles_fit_and_end_on_a_whole_word(title: str) -> None:
    views = [loading.loading_view(title, "trigger-1"), loading.message_view(title, "text"),
             forms.hyperparameter_view(ALGO, {}, {}, callback_id="rerun_form", title=title)]
    for view in views:
        shown = view["title"]["text"]
        assert len(shown) <= 24
        if shown == title:
            continue
        assert shown.endswith("…")
        kept = shown[:-1]
        assert title.startswith(kept)
        # Cut at a break: the kept part ends with one, or the title goes on with one.
        assert kept[-1] in " -_." or title[len(kept)] in " -_.", shown


def test_loading_and_form_titles_are_shortened_alike() -> None:
    title = "Rerun tabular-classification v3"
    assert loading.loading_view(title, "t")["title"]["text"] == "Rerun tabular-…"
    assert loading.message_view(title, "x")["title"]["text"] == "Rerun tabular-…"


def test_more_than_100_choices_use_an_external_select_with_the_current_value() -> None:
    view = forms.hyperparameter_view(MANY_CHOICES, {"arch": "arch-199"}, {"channel": "C1"},
                                     callback_id="start_form", title="Start")
    el = next(b for b in view["blocks"] if b.get("block_id") == "hp:arch")["element"]
    assert el["type"] == "external_select" and el["action_id"] == options.ACTION_ID
    assert el["min_query_length"] == 0
    assert el["initial_option"]["value"] == "arch-199"
    assert json.loads(view["private_metadata"]) == {"channel": "C1", "algorithm": "wide"}


def test_more_than_100_pools_use_an_external_select() -> None:
    pools = list(_pools(101))
    view = forms.hyperparameter_view(ALGO, {}, {}, callback_id="start_form", title="Start",
                                     pools=pools, pool="pool-100")
    el = next(b for b in view["blocks"] if b.get("block_id") == "pool")["element"]
    assert el["type"] == "external_select" and el["initial_option"]["value"] == "pool-100"
    start = _start_choice(Catalog(algorithms={"toy": ALGO}, pools=_pools(101)), [], {})
    assert start["blocks"][1]["element"]["type"] == "external_select"


def test_more_than_100_algorithms_and_presets_use_an_external_select() -> None:
    catalog = Catalog(algorithms={a.id: a for a in (_algo(i) for i in range(60))},
                      pools=load_pools())
    fits = _start_choice(catalog, [_preset(i) for i in range(40)], {})
    assert fits["blocks"][0]["element"]["type"] == "static_select"
    over = _start_choice(catalog, [_preset(i) for i in range(41)], {})
    assert over["blocks"][0]["element"]["type"] == "external_select"
    assert over["blocks"][0]["element"]["action_id"] == options.ACTION_ID


@pytest.mark.parametrize(("value", "text"), [
    (1e-6, "0.000001"),
    (1e-12, "0.000000000001"),
    (1e21, "1000000000000000000000"),
    (0.1 + 0.2, "0.3"),
    (2.5e-7, "0.00000025"),
    (-1e-6, "-0.000001"),
    (10.0, "10"),
    (0.0, "0"),
    (7, "7"),
    (10**22, "10000000000000000000000"),
    ("0.01", "0.01"),
])
def test_plain_number_never_uses_exponent_notation(value: float, text: str) -> None:
    assert forms.plain_number(value) == text


def test_plain_number_refuses_what_is_not_a_finite_number() -> None:
    for bad in (float("inf"), float("nan"), True):
        with pytest.raises(ValueError):
            forms.plain_number(bad)


def test_number_input_bounds_are_plain_decimals() -> None:
    view = forms.hyperparameter_view(MANY_CHOICES, {}, {}, callback_id="start_form",
                                     title="Start")
    el = next(b for b in view["blocks"] if b.get("block_id") == "hp:tiny_lr")["element"]
    assert (el["min_value"], el["max_value"], el["initial_value"]) == (
        "0.000000000001", "1000000000000000000000", "0.000001")
    assert not any(re.search(r"[eE]", el[k]) for k in ("min_value", "max_value"))


def test_integer_bounds_are_integers() -> None:
    view = forms.hyperparameter_view(ALGO, {"epochs": 7.0}, {}, callback_id="start_form",
                                     title="Start")
    el = next(b for b in view["blocks"] if b.get("block_id") == "hp:epochs")["element"]
    assert (el["min_value"], el["max_value"], el["initial_value"]) == ("1", "100", "7")


def test_hyperparameters_past_the_block_limit_are_named_not_dropped() -> None:
    # More than a manifest may declare (90): the view must still hold whatever it is given.
    hps = [HyperParameter(name=f"p{i}", type="int", default=1) for i in range(120)]
    algo = ALGO.model_copy(update={"hyperparameters": hps})
    view = forms.hyperparameter_view(algo, {}, {}, callback_id="start_form", title="Start",
                                     pools=["gpu-1"])
    assert len(view["blocks"]) == 100
    # title, pool, a file and a URI block per data channel, then the note
    shown = 100 - 2 - 2 * len(algo.channels) - 1
    note = view["blocks"][-1]["elements"][0]["text"]
    assert note.startswith(f"{120 - shown} more hyperparameters")
    assert f"`p{shown}`, `p{shown + 1}`" in note
    assert note.endswith("`p119`")
    _slack_valid(view)


def test_algorithm_title_is_escaped_in_mrkdwn() -> None:
    algo = ALGO.model_copy(update={"title": "A <!channel> & B"})
    view = forms.hyperparameter_view(algo, {}, {}, callback_id="start_form", title="Start")
    assert "&lt;!channel&gt; &amp; B" in view["blocks"][0]["text"]["text"]


def test_invalid_values_become_inline_errors() -> None:
    view = {"state": {"values": {"hp:epochs": {"value": {"value": "1000"}},
                                 "hp:lr": {"value": {"value": "0.5"}}}}}
    params, errors = forms.validate_form(ALGO, forms.read_values(view))
    assert params == {"lr": "0.5"}
    assert "epochs" in errors["hp:epochs"]


def test_read_values_handles_selects() -> None:
    view = {"state": {"values": {"pool": {"value": {"selected_option": {"value": "gpu-1"}}},
                                 "name": {"value": {"value": None}}}}}
    assert forms.read_values(view) == {"pool": "gpu-1"}


def test_each_data_channel_takes_a_file_or_a_uri() -> None:
    view = forms.hyperparameter_view(ALGO, {}, {}, callback_id="rerun_form", title="Rerun",
                                     data={"train": "s3://bucket/old/"})
    _slack_valid(view)
    channel = ALGO.channels[0].name
    file_block = next(b for b in view["blocks"]
                      if b.get("block_id") == forms.DATA_FILE_BLOCK + channel)
    uri_block = next(b for b in view["blocks"]
                     if b.get("block_id") == forms.DATA_URI_BLOCK + channel)
    assert file_block["optional"] and file_block["element"]["type"] == "file_input"
    assert file_block["element"]["max_files"] == 1
    assert uri_block["optional"] and uri_block["element"]["type"] == "plain_text_input"


def test_read_data_takes_a_file_or_a_changed_uri_and_refuses_both() -> None:
    current = {"train": "s3://bucket/old/"}
    values = {"data_file:train": "F0123ABCDEF", "data_uri:train": "s3://bucket/old/",
              "data_uri:validation": "s3://bucket/val/"}
    assert forms.read_data(values, current) == (
        {"train": "F0123ABCDEF", "validation": "s3://bucket/val/"}, {})
    assert forms.read_data({"data_uri:train": "s3://bucket/old/"}, current) == ({}, {})
    data, errors = forms.read_data({"data_file:train": "F0123ABCDEF",
                                    "data_uri:train": "s3://bucket/new/"}, current)
    assert errors == {"data_file:train": "Give a file or a URI for train, not both."}


def test_a_file_input_state_reads_as_the_file_id() -> None:
    view = {"state": {"values": {"data_file:train": {"value": {
        "type": "file_input", "files": [{"id": "F0123ABCDEF", "name": "a.csv"}]}}}}}
    assert forms.read_values(view) == {"data_file:train": "F0123ABCDEF"}
