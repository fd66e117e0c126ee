from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable

import pytest

from bot.catalog import Catalog, load_pools
from bot.domain import Algorithm
from bot.slack import options
from tests.unit.test_forms import LONG_CHOICE, MANY_CHOICES, _algo, _pools, _preset

CATALOG = Catalog(algorithms={a.id: a for a in (_algo(i) for i in range(150))},
                  pools=_pools(130))
WIDE = Catalog(algorithms={"wide": MANY_CHOICES}, pools=load_pools())


def _no_presets() -> list:
    raise AssertionError("presets are read for the source menu only")


def _menus(catalog: Catalog, presets: Callable[[], list]) -> options.Menus:
    return options.Menus(
        algorithms=lambda: catalog.algorithms.values(), pools=catalog.pools.values(),
        presets=presets, algorithm_of=lambda meta: catalog.algorithms.get(meta.get("algorithm")))


def _values(answer: dict) -> list[str]:
    groups = answer.get("option_groups") or [{"options": answer.get("options", [])}]
    return [o["value"] for g in groups for o in g["options"]]


def test_source_menu_answers_at_most_100_options_across_its_groups() -> None:
    answer = options.options_for(_menus(CATALOG, lambda: [_preset(i) for i in range(130)]),
                                 block_id=options.SOURCE_BLOCK, query="", meta={})
    algorithms, presets = answer["option_groups"]
    assert len(algorithms["options"]) + len(presets["options"]) == 100
    assert len(presets["options"]) == 50  # a long group doesn't crowd out the other
    assert presets["label"]["text"] == "Presets (50 of 130, type to narrow)"


def test_source_menu_gives_a_small_group_all_its_places() -> None:
    answer = options.options_for(_menus(CATALOG, lambda: [_preset(1)]),
                                 block_id=options.SOURCE_BLOCK, query="", meta={})
    assert [len(g["options"]) for g in answer["option_groups"]] == [99, 1]


def test_query_filters_case_insensitively_and_values_are_exact() -> None:
    answer = options.options_for(_menus(CATALOG, lambda: [_preset(i) for i in range(130)]),
                                 block_id=options.SOURCE_BLOCK, query="  PRESET-12", meta={})
    assert _values(answer) == [f"preset:preset-{n}" for n in (12, *range(120, 130))]
    assert options.options_for(_menus(CATALOG, list), block_id=options.SOURCE_BLOCK, query="ALGO-149",
                               meta={}) == {"option_groups": [
                                   {"label": options.plain_text("Algorithms", 75),
                                    "options": [options.algorithm_option(_algo(149))]}]}


def test_empty_groups_are_left_out() -> None:
    answer = options.options_for(_menus(CATALOG, list), block_id=options.SOURCE_BLOCK, query="nothing",
                                 meta={})
    assert answer == {"option_groups": []}


def test_pool_menu_filters_pools() -> None:
    answer = options.options_for(_menus(CATALOG, _no_presets), block_id=options.POOL_BLOCK,
                                 query="pool-12", meta={})
    assert _values(answer) == ["pool-12", *(f"pool-{n}" for n in range(120, 130))]
    every = options.options_for(_menus(CATALOG, _no_presets), block_id="pool", query="", meta={})
    assert len(every["options"]) == 100


def test_choice_menu_lists_the_choices_of_the_algorithm_in_the_metadata() -> None:
    answer = options.options_for(_menus(WIDE, _no_presets), block_id="hp:arch", query="arch-24",
                                 meta={"algorithm": "wide"})
    assert _values(answer) == ["arch-24", *(f"arch-{n}" for n in range(240, 250))]
    assert len(options.options_for(_menus(WIDE, _no_presets), block_id="hp:arch", query="",
                                   meta={"algorithm": "wide"})["options"]) == 100


@pytest.mark.parametrize(("block_id", "meta"), [
    ("hp:arch", {}),
    ("hp:arch", {"algorithm": "gone"}),
    ("hp:nope", {"algorithm": "wide"}),
    ("hp:tiny_lr", {"algorithm": "wide"}),
    ("name", {"algorithm": "wide"}),
])
def test_an_unknown_menu_answers_no_options(block_id: str, meta: dict) -> None:
    assert options.options_for(_menus(WIDE, _no_presets), block_id=block_id, query="",
                               meta=meta) == {"options": []}


def test_options_for_request_reads_a_block_suggestion_payload() -> None:
    body = {"type": "block_suggestion", "action_id": options.ACTION_ID, "block_id": "hp:mode",
            "value": "fa", "view": {"private_metadata": json.dumps({"algorithm": "wide"})}}
    assert _values(options.options_for_request(_menus(WIDE, _no_presets), body)) == ["fast"]
    body["view"]["private_metadata"] = "not json"
    assert options.options_for_request(_menus(WIDE, _no_presets), body) == {"options": []}


def test_long_choice_round_trips_through_an_index_value() -> None:
    hp = MANY_CHOICES.hyperparameter("mode")
    values = [options.choice_value(hp, i) for i in range(2)]
    assert values == ["fast", "#1"]
    assert [options.choice_from_value(hp, v) for v in values] == ["fast", LONG_CHOICE]
    assert options.choice_from_value(hp, "#0") == "#0"  # no token: refused later as a choice
    long_option = options.choice_options(hp, "xxx")[0]
    assert long_option["value"] == "#1" and len(long_option["text"]["text"]) == 75


def test_a_long_choice_whose_token_is_also_a_choice_is_refused() -> None:
    algo = Algorithm.model_validate({**MANY_CHOICES.model_dump(), "hyperparameters": [
        {"name": "mode", "type": "choice", "choices": ["#1", LONG_CHOICE], "default": "#1"}]})
    with pytest.raises(ValueError, match="can't tell them apart"):
        options.choice_value(algo.hyperparameter("mode"), 1)


def test_option_values_are_never_shortened() -> None:
    with pytest.raises(ValueError):
        options.option("v" * 151)
    with pytest.raises(ValueError):
        options.option("")
    assert options.option("v" * 150, "t" * 80) == {
        "text": {"type": "plain_text", "text": "t" * 74 + "…", "emoji": True},
        "value": "v" * 150}


@pytest.mark.parametrize(("text", "limit", "clipped"), [
    ("short", 75, "short"),
    ("alpha beta gamma delta", 15, "alpha beta…"),
    ("alphabetagammadelta", 10, "alphabeta…"),
    ("alpha betagammadeltaepsilon", 12, "alpha betag…"),  # a cut losing over half: mid-word
])
def test_clip_cuts_between_words(text: str, limit: int, clipped: str) -> None:
    assert options.clip(text, limit) == clipped
    assert len(clipped) <= limit


def test_importing_options_stays_light_for_the_ack_path() -> None:
    code = "import json, sys, bot.slack.options; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    loaded = {m.split(".")[0] for m in json.loads(out.stdout)}
    assert not loaded & {"pydantic", "yaml", "slack_bolt", "slack_sdk"}
