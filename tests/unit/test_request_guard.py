"""The checks in front of Bolt: timestamps, bodies Bolt can't parse, bodies kept out of logs."""

from __future__ import annotations

import json
import logging
from urllib.parse import urlencode

import pytest

from bot.localslack.signing import block_actions_body, slash_command_body, view_submission_body
from bot.slack.request_guard import (
    MAX_MESSAGE,
    WithholdBodies,
    bad_timestamp,
    malformed_body,
    withhold_bodies,
)

FORM = "application/x-www-form-urlencoded"


# -- timestamps ---------------------------------------------------------------------------------

@pytest.mark.parametrize("value", ["1764480000", ["1764480000"], ("0",)])
def test_plain_integer_timestamp_passes(value: object) -> None:
    assert not bad_timestamp({"X-Slack-Request-Timestamp": value})


@pytest.mark.parametrize("value", ["²", "1²", "١٧٦٤٤٨٠٠٠٠", "9" * 5000, "", "-1", "+1",
                                   "1e9", "1.5", " 1", [], [5], None],
                         ids=repr)
def test_timestamp_that_is_not_ascii_digits_is_bad(value: object) -> None:
    assert bad_timestamp({"x-slack-request-timestamp": value})


def test_missing_timestamp_is_left_to_bolt() -> None:
    assert not bad_timestamp({"content-type": FORM})


# -- bodies -------------------------------------------------------------------------------------

def _press() -> str:
    return block_actions_body("show_logs", "job:1", user_id="U1", channel_id="C1",
                              message_ts="1.2", response_url="http://127.0.0.1:9/r")


def _submission() -> str:
    view = {"id": "V1", "callback_id": "reject_reason", "type": "modal",
            "private_metadata": "{}"}
    values = {"reason": {"reason": {"type": "plain_text_input", "value": "no"}}}
    return view_submission_body(view, values, user_id="U1")


@pytest.mark.parametrize("body", [
    "",
    slash_command_body("start toy", user_id="U1", user_name="u", channel_id="C1",
                       response_url="http://127.0.0.1:9/r"),
    "text=payload",  # "payload" in the body, but no payload field
    json.dumps({"type": "url_verification", "challenge": "abc"}),
    json.dumps({"type": "event_callback", "event": {"type": "app_mention", "user": "U1"},
                "authorizations": [{"team_id": "T1", "user_id": "U2"}]}),
    json.dumps({"type": "block_actions", "team": None, "enterprise": None,
                "user": {"id": "U1"}, "actions": [{"action_id": "a"}]}),
], ids=["empty", "slash command", "payload word", "url verification", "event", "nulls"])
def test_what_slack_sends_is_well_formed(body: str) -> None:
    assert malformed_body(body, FORM) is None


def test_real_interactions_are_well_formed() -> None:
    assert malformed_body(_press(), FORM) is None
    assert malformed_body(_submission(), f"{FORM}; charset=utf-8") is None


def _payload(payload: object) -> str:
    return urlencode({"payload": json.dumps(payload)})


@pytest.mark.parametrize(("body", "reason"), [
    ("payload=%7Bnotjson", "payload is not JSON"),
    ("payload=%5B1%5D", "payload is not an object"),
    ("{notjson", "the body is not JSON"),
    (_payload({"type": "block_actions", "actions": "x"}), "payload.actions is not a list"),
    (_payload({"type": "block_actions", "actions": []}), "payload.actions is empty"),
    (_payload({"type": "block_actions", "actions": None}), "payload.actions is not a list"),
    (_payload({"response_urls": [5]}), "payload.response_urls[0] is not an object"),
    (_payload({"actions": [{"action_id": 5}]}), "payload.actions[0].action_id is not a string"),
    (_payload({"actions": [{"value": "v"}]}), "payload.actions[0] has no action_id"),
    (_payload({"view": {"type": "modal", "state": {"values": {"b": None}}}}),
     "payload.view.state.values.b is not an object"),
    (_payload({"view": {"type": "modal", "callback_id": ["x"]}}), "payload.view.callback_id is not a string"),
    (_payload({"view": {"type": "modal", "state": {"values": {"b": {"a": []}}}}}),
     "payload.view.state.values.b.a is not an object"),
    (_payload({"team": 5}), "payload.team is not an object"),
], ids=lambda v: v[:40])
def test_what_bolt_cannot_parse_is_named(body: str, reason: str) -> None:
    problem = malformed_body(body, FORM)
    assert problem is not None and problem.startswith(reason)


def test_json_content_type_is_parsed_as_json_whatever_the_first_character() -> None:
    assert malformed_body("[1]", "application/json") == "the body is not an object"
    assert malformed_body("a=[1]", FORM) is None


# -- logs ---------------------------------------------------------------------------------------

def _record(message: str, level: int = logging.INFO) -> logging.LogRecord:
    return logging.LogRecord("slack_bolt.RequestVerification", level, __file__, 1, message,
                             None, None)


def test_signature_failure_keeps_its_timestamp_and_loses_its_body() -> None:
    record = _record("Invalid request signature detected (signature: v0=abc, timestamp: "
                     "1764480000, body: text=secret\nFAKE LOG LINE)")
    assert WithholdBodies().filter(record)
    assert record.getMessage() == ("Invalid request signature detected (timestamp "
                                   "'1764480000'; request body withheld)")


def test_long_messages_are_cut_and_short_ones_kept() -> None:
    long, short = _record("Unhandled request " + "x" * 10_000), _record("Unhandled request")
    WithholdBodies().filter(long)
    WithholdBodies().filter(short)
    assert len(long.getMessage()) < MAX_MESSAGE + 60
    assert short.getMessage() == "Unhandled request"


def test_debug_records_are_left_alone() -> None:
    record = _record("Invalid request signature detected (body: x)", logging.DEBUG)
    WithholdBodies().filter(record)
    assert record.getMessage().endswith("(body: x)")


def test_withhold_bodies_installs_one_filter_per_logger() -> None:
    class App:
        logger = logging.getLogger("tests.request_guard.app")

    verification = logging.getLogger("slack_bolt.RequestVerification")
    before = list(verification.filters)
    try:
        withhold_bodies(App())
        withhold_bodies(App())
        assert sum(isinstance(f, WithholdBodies) for f in App.logger.filters) == 1
        assert sum(isinstance(f, WithholdBodies) for f in verification.filters) == 1
    finally:
        App.logger.filters.clear()
        verification.filters[:] = before


def test_a_view_without_a_type_is_malformed() -> None:
    """Bolt indexes view["type"]: without one a signed submission would be a 500."""
    import json
    from urllib.parse import quote

    from bot.slack.request_guard import malformed_body

    payload = {"type": "view_submission", "user": {"id": "U1"},
               "view": {"callback_id": "start_form"}}
    body = "payload=" + quote(json.dumps(payload))
    assert malformed_body(body, "application/x-www-form-urlencoded") == "payload.view has no type"
