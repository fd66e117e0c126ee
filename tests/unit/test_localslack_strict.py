"""The local Slack's strict checks as plain functions: no server, no sockets."""

from __future__ import annotations

import pytest

from bot.localslack.escaping import DEFAULT_LINK_HOSTS, escaping_problems
from bot.localslack.strict import Refusal, StrictRules


def _problems(text: str, **allowances: frozenset[str]) -> list[str]:
    options = {"link_hosts": DEFAULT_LINK_HOSTS, "special_mentions": frozenset(), **allowances}
    return list(escaping_problems(text, **options))


@pytest.mark.parametrize("text", [
    "<@U123> and <@W0AB|ana> in <#C123> or <#C0LOCAL|trainbot-local>",
    "loss &lt; 0.5 &amp;&amp; acc &gt; 0.9 > baseline",
    "<!subteam^S0LOCAL1|@ml-approvers> please approve",
    "<!date^1392734382^{date_short} at {time}|Feb 18, 2014>",
    "<http://127.0.0.1:6006/#scalars|TensorBoard> <http://localhost:3000>",
    "<https://eu-west-1.console.aws.amazon.com/sagemaker/home?region=eu-west-1#/jobs/x|job>",
    "<https://docs.aws.amazon.com/sagemaker/|docs> <https://api.slack.com/methods|api>",
    "> a quote\n*bold* _it_ `code` ~strike~",
])
def test_well_formed_mrkdwn_passes(text: str) -> None:
    assert _problems(text) == []


@pytest.mark.parametrize(("text", "expected"), [
    ("a < b", 'unescaped "<"'),
    ("tail -n 5 <file", 'unescaped "<"'),
    ("Q&A", 'unescaped "&"'),
    ("&nbsp;", 'unescaped "&"'),
    ("<http://127.0.0.1:6006|R&D>", 'unescaped "&" in the label'),
    ("<!channel>", "<!channel> notifies everyone"),
    ("<!here|here>", "<!here> notifies everyone"),
    ("<!everyone>", "<!everyone> notifies everyone"),
    ("<https://evil.example|Approve>", "link to evil.example is not in link_hosts"),
    ("<https://console.aws.amazon.com.evil.example/>", "is not in link_hosts"),
    ("<mailto:a@b.c|mail>", 'unescaped "<"'),
    ("<@someone>", "is not a well-formed mention"),
    ("<module>", 'unescaped "<"'),
])
def test_bad_mrkdwn_is_named(text: str, expected: str) -> None:
    (problem,) = _problems(text)

    assert expected in problem


def test_allow_lists_widen_only_what_they_name() -> None:
    assert _problems("<!here> <https://tb.example/x|tb>",
                     link_hosts=frozenset({"*.example"}),
                     special_mentions=frozenset({"here"})) == []
    assert len(_problems("<!channel> <https://example/x>", link_hosts=frozenset({"*.example"}),
                         special_mentions=frozenset({"here"}))) == 2


def test_a_problem_quotes_a_snippet_not_the_whole_text() -> None:
    (problem,) = _problems("x" * 500 + " a < b " + "y" * 500)

    assert len(problem) < 200 and "a < b" in problem


def test_plain_text_objects_are_not_checked_for_escaping() -> None:
    StrictRules().check_message({"blocks": [
        {"type": "header", "text": {"type": "plain_text", "text": "R&D: loss < 0.5"}}]})


def test_message_problems_are_all_reported_at_once() -> None:
    button = {"type": "button", "action_id": "go", "text": {"type": "plain_text", "text": "Go"}}
    blocks = [{"type": "actions", "block_id": "b", "elements": [button, button]},
              {"type": "section", "block_id": "b", "text": {"type": "mrkdwn", "text": "a<b"}}]

    with pytest.raises(Refusal) as refusal:
        StrictRules().check_message({"blocks": blocks, "text": "fine"})

    assert refusal.value.error == "invalid_blocks"
    assert [p.pointer for p in refusal.value.problems] == [
        "/blocks/0/elements/1/action_id", "/blocks/1/block_id", "/blocks/1/text/text"]


def test_blocks_that_are_not_a_list_are_invalid_blocks_format() -> None:
    with pytest.raises(Refusal) as refusal:
        StrictRules().check_message({"blocks": "[{not json"})

    assert refusal.value.reply() == {"ok": False, "error": "invalid_blocks_format"}


def test_a_view_that_is_not_an_object_is_invalid_arguments() -> None:
    with pytest.raises(Refusal) as refusal:
        StrictRules().check_view("modal")

    assert refusal.value.reply()["response_metadata"]["messages"] == [
        "[ERROR] must provide an object [json-pointer:/view]"]
