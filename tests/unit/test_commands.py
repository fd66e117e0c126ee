from __future__ import annotations

import shlex

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.commands import (
    COMMANDS,
    Algorithms,
    Approve,
    BudgetList,
    BudgetRemove,
    BudgetSet,
    Command,
    Cost,
    Diff,
    Eval,
    Help,
    Lineage,
    Logs,
    ModelApprove,
    ModelRegister,
    ModelReject,
    Models,
    Pools,
    PresetDelete,
    PresetList,
    PresetSave,
    PresetShow,
    Reject,
    Rerun,
    Show,
    Start,
    StartForm,
    StatusQuery,
    Stop,
    Sweep,
    Tb,
    Versions,
    parse,
    parse_duration,
    unescape_slack,
)
from bot.domain import InvalidInput


@pytest.mark.parametrize(("text", "expect"), [
    ("start image-classification lr=0.01 --pool gpu-1",
     Start(algorithm="image-classification", params={"lr": "0.01"}, pool="gpu-1")),
    ("start tabular-classification --data train=s3://bkt/x --name exp-1 --max-runtime 2h",
     Start(algorithm="tabular-classification", data={"train": "s3://bkt/x"}, job_name="exp-1",
           max_runtime_s=7200)),
    ("start --preset nightly epochs=3", Start(preset="nightly", params={"epochs": "3"})),
    ("start", StartForm()),
    ("start --wait", StartForm()),
    ("rerun exp1 v2 lr=0.1 --pool=gpu-4 --wait",
     Rerun(job="exp1", version=2, params={"lr": "0.1"}, pool="gpu-4", wait=True)),
    ("stop exp1", Stop(job="exp1")),
    ("stop exp1 v3 --wait", Stop(job="exp1", version=3, wait=True)),
    ("status", StatusQuery()),
    ("status exp1", StatusQuery(job="exp1")),
    ("versions exp1", Versions(job="exp1")),
    ("show exp1 v2", Show(job="exp1", version=2)),
    ("lineage exp1", Lineage(job="exp1")),
    ("eval exp1 v1", Eval(job="exp1", version=1)),
    ("logs exp1", Logs(job="exp1")),
    ("tb exp1 3", Tb(job="exp1", version=3)),
    ("diff exp1 v1 3", Diff(job="exp1", a=1, b=3)),
    ("preset save p1 --from exp1 v2 --description 'nightly run'",
     PresetSave(name="p1", from_job="exp1", from_version=2, description="nightly run")),
    ("preset save p2 tabular-classification max_iter=50 --pool gpu-1 --spot",
     PresetSave(name="p2", algorithm="tabular-classification", params={"max_iter": "50"},
                pool="gpu-1")),
    ("preset list", PresetList()),
    ("preset show p1", PresetShow(name="p1")),
    ("preset delete p1", PresetDelete(name="p1")),
    ("approve abcd1234", Approve(request_id="abcd1234")),
    ("reject abcd1234 --reason “too expensive”", Reject(request_id="abcd1234",
                                                       reason="too expensive")),
    ("model register sw", ModelRegister(job="sw")),
    ("model register churn v3 --group churn-models",
     ModelRegister(job="churn", version=3, group="churn-models")),
    ("model approve churn-models v2 --note 'ship it'",
     ModelApprove(group="churn-models", number=2, note="ship it")),
    ("MODEL reject churn-models 2 --reason overfits",
     ModelReject(group="churn-models", number=2, reason="overfits")),
    ("models", Models()),
    ("models churn-models", Models(group="churn-models")),
    ("sweep tabular-classification learning_rate=0.01..0.5:log max_leaf_nodes=8..64 "
     "--trials 8 --parallel 2 --name sw --wait",
     Sweep(algorithm="tabular-classification", trials=8, parallel=2, name="sw", wait=True,
           assignments={"learning_rate": "0.01..0.5:log", "max_leaf_nodes": "8..64"})),
    ("sweep --preset fast lr=0.1|0.2 —objective validation:f1 --strategy RANDOM "
     "--pool gpu-1 --data train=s3://b/p",
     Sweep(preset="fast", assignments={"lr": "0.1|0.2"}, objective="validation:f1",
           strategy="random", pool="gpu-1", data={"train": "s3://b/p"})),
    ("budget", BudgetList()),
    ("budget set <#C0123|general> 500", BudgetSet(scope="channel", subject="C0123",
                                                   limit_usd=500.0)),
    ("budget set @U0ANA $1,200 --policy refuse", BudgetSet(scope="user", subject="U0ANA",
                                                           limit_usd=1200.0, policy="refuse")),
    ("budget remove #C0123", BudgetRemove(scope="channel", subject="C0123")),
    ("cost --month 2026-11 --by user", Cost(month="2026-11", by="user")),
    ("cost --since 7d", Cost(since="7d")),
    ("sweep --from digits v3 lr=0.001..0.01:log --trials 4",
     Sweep(from_job="digits", from_version=3, assignments={"lr": "0.001..0.01:log"}, trials=4)),
    ("algorithms", Algorithms()),
    ("algorithms toy", Algorithms(algorithm="toy")),
    ("pools", Pools()),
    ("", Help()),
    ("HELP start", Help(topic="start")),
])
def test_grammar(text: str, expect: Command) -> None:
    assert parse(text) == expect


def test_every_verb_has_a_command_class() -> None:
    verbs = {type(parse(text)).verb for text in (
        "help", "algorithms", "pools", "start x", "rerun j", "stop j", "status", "versions j",
        "show j", "diff j 1 2", "lineage j", "eval j", "logs j", "tb j", "preset list",
        "approve r", "reject r", "model register j", "models", "sweep x a=1..2", "budget",
        "cost")}
    assert verbs == set(COMMANDS)


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
    ("start algo --max-runtime 0", "from 1m to 28d"),
    ("start algo --max-runtime 29d", "from 1m to 28d"),
    ("model", "needs a subcommand"),
    ("model publish churn v1", "not a model subcommand"),
    ("model approve churn", "a model group and a version"),
    ("model approve churn latest", "not a version"),
    ("model reject churn v1 --note x", "not an option"),
    ("model register", "Which job"),
    ("models a b", "at most a model group"),
    ("sweep", "What to sweep"),
    ("sweep --preset a --from b lr=1..2", "Sweep one thing"),
    ("sweep algo lr", "name=lo..hi"),
    ("sweep algo lr=1..2 --trials many", "whole number"),
    ("sweep algo lr=1..2 --parallel 0", "whole number"),
    ("sweep algo lr=1..2 --grid", "not an option"),
    ("budget set #general 500", "neither a channel"),
    ("budget set <#C0123|general> lots", "not an amount"),
    ("budget set <#C0123|general> -5", "above 0"),
    ("budget set @U0123 5 --policy maybe", "approve"),
    ("budget frobnicate", "not a budget subcommand"),
    ("cost march", "Unexpected"),
])
def test_bad_input_names_problem_and_usage(text: str, needle: str) -> None:
    with pytest.raises(InvalidInput) as err:
        parse(text)
    assert needle in err.value.user_text()


@pytest.mark.parametrize("dash", ["—", "–"])
def test_autocorrected_dash_before_an_option_is_two_hyphens(dash: str) -> None:
    cmd = parse(f"start toy lr=0.1 {dash}pool gpu-1 {dash}spot {dash}name=exp-1 {dash}DATA "
                "train=s3://bkt/x")
    assert (cmd.pool, cmd.spot, cmd.job_name, cmd.data) == ("gpu-1", True, "exp-1",
                                                             {"train": "s3://bkt/x"})
    assert parse(f"rerun exp1 v2 {dash}pool=gpu-4").pool == "gpu-4"


def test_a_dash_in_a_value_is_left_alone() -> None:
    cmd = parse("preset save p1 --from exp1 --description —fast")
    assert cmd.description == "—fast"
    assert parse("reject abcd1234 --reason 'too big — use gpu-1'").reason == "too big — use gpu-1"
    assert parse("start toy note=—x").params == {"note": "—x"}


def test_an_autocorrected_option_in_a_value_place_means_the_value_is_missing() -> None:
    with pytest.raises(InvalidInput, match="needs a value"):
        parse("start toy --name —pool gpu-1")


def test_an_autocorrected_unknown_option_is_named() -> None:
    with pytest.raises(InvalidInput, match="`--gpu` is not an option"):
        parse("start toy —gpu")


@pytest.mark.parametrize(("escaped", "text"), [
    ("a&lt;b&amp;c&gt;d", "a<b&c>d"),
    ("&amp;lt;", "&lt;"),  # someone typed "&lt;"
    ("&amp;amp;", "&amp;"),
    ("no entities", "no entities"),
])
def test_unescape_slack(escaped: str, text: str) -> None:
    assert unescape_slack(escaped) == text


def _as_slack_sends(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def test_slack_text_is_unescaped_once() -> None:
    sent = _as_slack_sends("start toy note=a<b&c>d --name 'x &amp; y'")
    assert sent == "start toy note=a&lt;b&amp;c&gt;d --name 'x &amp;amp; y'"
    cmd = parse(sent, from_slack=True)
    assert (cmd.params, cmd.job_name) == ({"note": "a<b&c>d"}, "x &amp; y")


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="ab&<>;lgtmp# ", min_size=1, max_size=30))
def test_any_value_survives_slack_escaping(value: str) -> None:
    cmd = parse(_as_slack_sends(f"start toy note={shlex.quote(value)}"), from_slack=True)
    assert cmd.params == {"note": value}


def test_cli_text_is_taken_as_typed() -> None:
    assert parse("start toy note=a&amp;b").params == {"note": "a&amp;b"}


def test_duration() -> None:
    assert parse_duration("90") == 90 and parse_duration("45m") == 2700


@settings(max_examples=300, deadline=None)
@given(st.one_of(
    st.text(max_size=200),
    st.lists(st.one_of(st.sampled_from([*COMMANDS, "--pool", "--data", "--from", "v1", "x=1",
                                         "--preset", "save", "list", "'", '"', "--", "=", "v0",
                                         "—pool", "–", "&amp;", "&lt;"]),
                       st.text(max_size=10)), max_size=8).map(" ".join),
))
def test_parser_raises_only_its_own_error(text: str) -> None:
    for from_slack in (False, True):
        try:
            parse(text, from_slack=from_slack)
        except InvalidInput as exc:
            assert exc.user_text()
