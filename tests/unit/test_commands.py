from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.commands import COMMANDS, parse, parse_duration
from bot.domain import InvalidInput


@pytest.mark.parametrize(("text", "expect"), [
    ("start image-classification lr=0.01 --pool gpu-1",
     {"name": "start", "algorithm": "image-classification", "params": {"lr": "0.01"},
      "pool": "gpu-1"}),
    ("start tabular-classification --data train=s3://bkt/x --name exp-1 --max-runtime 2h",
     {"data": {"train": "s3://bkt/x"}, "job_name": "exp-1", "max_runtime_s": 7200}),
    ("start --preset nightly epochs=3", {"preset": "nightly", "params": {"epochs": "3"}}),
    ("rerun exp1 v2 lr=0.1 --pool=gpu-4", {"job": "exp1", "version": 2, "pool": "gpu-4"}),
    ("stop exp1", {"job": "exp1", "version": None}),
    ("diff exp1 v1 3", {"version": 1, "other_version": 3}),
    ("preset save p1 --from exp1 v2 --description 'nightly run'",
     {"sub": "save", "preset": "p1", "job": "exp1", "version": 2, "description": "nightly run"}),
    ("preset save p2 tabular-classification max_iter=50", {"algorithm": "tabular-classification"}),
    ("reject abcd1234 --reason “too expensive”", {"request_id": "abcd1234",
                                                  "reason": "too expensive"}),
    ("", {"name": "help"}),
    ("HELP start", {"name": "help", "topic": "start"}),
])
def test_grammar(text: str, expect: dict) -> None:
    cmd = parse(text)
    for key, value in expect.items():
        assert getattr(cmd, key) == value


@pytest.mark.parametrize(("text", "needle"), [
    ("launch x", "not a trainbot command"),
    ("start algo lr", "key=value"),
    ("start algo --pool", "needs a value"),
    ("start algo --gpu", "not an option"),
    ("diff exp1 v1", "two versions"),
    ("rerun exp1 vX", "Unexpected"),
    ("start algo 'unterminated", "quotes"),
    ("start algo a=1 a=2", "twice"),
    ("preset frobnicate", "not a preset subcommand"),
    ("start algo --max-runtime soon", "duration"),
])
def test_bad_input_names_problem_and_usage(text: str, needle: str) -> None:
    with pytest.raises(InvalidInput) as err:
        parse(text)
    assert needle in err.value.user_text()


def test_duration() -> None:
    assert parse_duration("90") == 90 and parse_duration("45m") == 2700


@settings(max_examples=300, deadline=None)
@given(st.one_of(
    st.text(max_size=200),
    st.lists(st.one_of(st.sampled_from([*COMMANDS, "--pool", "--data", "--from", "v1", "x=1",
                                         "--preset", "save", "list", "'", '"', "--", "=", "v0"]),
                       st.text(max_size=10)), max_size=8).map(" ".join),
))
def test_parser_raises_only_its_own_error(text: str) -> None:
    try:
        parse(text)
    except InvalidInput as exc:
        assert exc.user_text()
