"""LocalSlack refuses what real Slack refuses, in Slack's words, and fails on demand.

A real ``slack_sdk.WebClient`` talks to the stand-in over loopback; each test sends one
kind of invalid (or valid) content and asserts on the answer Slack would give.
"""

from __future__ import annotations

import io
import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.localslack import LocalSlack, render_refusal

CHANNEL = "C0LOCAL"
USER = "U0LOCAL1"
# The approval message from Slack's Block Kit samples ("Approval" template,
# https://app.slack.com/block-kit-builder), with its fake link as Slack wrote it.
APPROVAL = [
    {"type": "section", "text": {"type": "mrkdwn", "text":
        "You have a new request:\n*<fakeLink.toEmployeeProfile.com|Fred Enriquez - New device request>*"}},
    {"type": "section", "fields": [
        {"type": "mrkdwn", "text": "*Type:*\nComputer (laptop)"},
        {"type": "mrkdwn", "text": "*When:*\nSubmitted Aut 10"},
        {"type": "mrkdwn", "text": "*Last Update:*\nMar 10, 2015 (3 years, 5 months)"},
        {"type": "mrkdwn", "text": "*Reason:*\nAll vowel keys aren't working."},
        {"type": "mrkdwn", "text": "*Specs:*\n\"Cheetah Pro 15\" - Fast, really fast\""},
    ]},
    {"type": "actions", "elements": [
        {"type": "button", "text": {"type": "plain_text", "emoji": True, "text": "Approve"},
         "style": "primary", "value": "click_me_123"},
        {"type": "button", "text": {"type": "plain_text", "emoji": True, "text": "Deny"},
         "style": "danger", "value": "click_me_123"},
    ]},
]
MODAL = {"type": "modal", "callback_id": "start",
         "title": {"type": "plain_text", "text": "Start training"},
         "submit": {"type": "plain_text", "text": "Start"},
         "blocks": [{"type": "input", "block_id": "epochs",
                     "label": {"type": "plain_text", "text": "Epochs"},
                     "element": {"type": "plain_text_input", "action_id": "value"}}]}


@pytest.fixture
def slack() -> Iterator[LocalSlack]:
    with LocalSlack(link_hosts={"127.0.0.1", "fakelink.toemployeeprofile.com"}) as server:
        yield server


@pytest.fixture
def client(slack: LocalSlack) -> WebClient:
    return WebClient(token="xoxb-local", base_url=slack.api_url)


def _button(action_id: str, text: str = "Start") -> dict[str, Any]:
    return {"type": "button", "action_id": action_id, "value": "v",
            "text": {"type": "plain_text", "text": text}}


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _refused(call: Any, **kwargs: Any) -> dict[str, Any]:
    with pytest.raises(SlackApiError) as failure:
        call(**kwargs)
    assert failure.value.response.status_code == 200
    return failure.value.response.data


def _trigger(slack: LocalSlack) -> str:
    return slack.new_interaction(CHANNEL, USER)["trigger_id"]


def _post(url: str, payload: dict[str, Any]) -> tuple[int, str]:
    request = urllib.request.Request(url, data=json.dumps(payload).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


# ------------------------------------------------------------------ Block Kit limits
def test_duplicate_action_id_in_a_block_is_invalid_blocks(slack: LocalSlack,
                                                          client: WebClient) -> None:
    blocks = [_section("pick one"), _section("or"), _section("this"),
              {"type": "actions", "elements": [_button("start_preset"), _button("start_preset")]}]

    reply = _refused(client.chat_postMessage, channel=CHANNEL, text="presets", blocks=blocks)

    message = 'action_id "start_preset" already exists [json-pointer:/blocks/3/elements/1/action_id]'
    assert reply == {"ok": False, "error": "invalid_blocks", "errors": [message],
                     "response_metadata": {"messages": [f"[ERROR] {message}"]}}
    assert slack.messages(CHANNEL) == []


def test_duplicate_block_id_in_a_message_is_invalid_blocks(client: WebClient) -> None:
    blocks = [dict(_section("a"), block_id="card"), dict(_section("b"), block_id="card")]

    reply = _refused(client.chat_postMessage, channel=CHANNEL, text="t", blocks=blocks)

    assert reply["errors"] == ['block_id "card" already exists [json-pointer:/blocks/1/block_id]']


def test_51_blocks_are_one_too_many(client: WebClient) -> None:
    reply = _refused(client.chat_postMessage, channel=CHANNEL, text="t",
                     blocks=[_section(str(i)) for i in range(51)])

    assert reply["errors"] == ["no more than 50 items allowed [json-pointer:/blocks]"]


def test_76_character_button_text_is_refused(client: WebClient) -> None:
    blocks = [{"type": "actions", "elements": [_button("go", "x" * 76)]}]

    reply = _refused(client.chat_postMessage, channel=CHANNEL, text="t", blocks=blocks)

    assert reply["error"] == "invalid_blocks"
    assert reply["errors"] == ["text attribute cannot exceed 75 characters "
                               "[json-pointer:/blocks/0/elements/0]"]


def test_101_options_are_refused(client: WebClient) -> None:
    options = [{"text": {"type": "plain_text", "text": f"preset {i}"}, "value": str(i)}
               for i in range(101)]
    select = {"type": "static_select", "action_id": "preset", "options": options}

    reply = _refused(client.chat_postMessage, channel=CHANNEL, text="t",
                     blocks=[dict(_section("Preset"), accessory=select)])

    assert reply["errors"] == ["options attribute cannot exceed 100 elements "
                               "[json-pointer:/blocks/0/accessory]"]


def test_101_options_across_option_groups_are_refused(client: WebClient) -> None:
    groups = [{"label": {"type": "plain_text", "text": f"group {g}"},
               "options": [{"text": {"type": "plain_text", "text": f"{g}-{i}"},
                            "value": f"{g}-{i}"} for i in range(50 + g)]} for g in range(2)]
    select = {"type": "static_select", "action_id": "preset", "option_groups": groups}

    reply = _refused(client.chat_postMessage, channel=CHANNEL, text="t",
                     blocks=[dict(_section("Preset"), accessory=select)])

    assert reply["errors"] == ["no more than 100 options allowed (the groups hold 101) "
                               "[json-pointer:/blocks/0/accessory/option_groups]"]


def test_76_character_option_text_is_refused(client: WebClient) -> None:
    select = {"type": "static_select", "action_id": "preset",
              "options": [{"text": {"type": "plain_text", "text": "o" * 76}, "value": "v"}]}

    reply = _refused(client.chat_postMessage, channel=CHANNEL, text="t",
                     blocks=[dict(_section("Preset"), accessory=select)])

    assert reply["errors"] == ["text attribute cannot exceed 75 characters "
                               "[json-pointer:/blocks/0/accessory/options/0]"]


def test_2001_character_section_field_is_refused(client: WebClient) -> None:
    block = {"type": "section", "fields": [{"type": "mrkdwn", "text": "f" * 2001}]}

    reply = _refused(client.chat_postMessage, channel=CHANNEL, text="t", blocks=[block])

    assert reply["errors"] == ["must be less than 2001 characters "
                               "[json-pointer:/blocks/0/fields/0/text]"]


def test_unknown_block_type_is_unsupported(client: WebClient) -> None:
    reply = _refused(client.chat_postMessage, channel=CHANNEL, text="t",
                     blocks=[{"type": "sectoin", "text": {"type": "mrkdwn", "text": "x"}}])

    assert reply["errors"] == ["unsupported type: sectoin [json-pointer:/blocks/0/type]"]


def test_text_over_40000_characters_is_msg_too_long(client: WebClient) -> None:
    reply = _refused(client.chat_postMessage, channel=CHANNEL, text="x" * 40_001)

    assert reply == {"ok": False, "error": "msg_too_long"}


def test_too_long_modal_title_is_invalid_arguments(slack: LocalSlack, client: WebClient) -> None:
    view = dict(MODAL, title={"type": "plain_text", "text": "Start a training job now!"})

    reply = _refused(client.views_open, trigger_id=_trigger(slack), view=view)

    assert reply == {"ok": False, "error": "invalid_arguments", "response_metadata": {
        "messages": ["[ERROR] title must be between 1 and 24 characters [json-pointer:/view]"]}}
    assert slack.views() == []


def test_modal_with_inputs_needs_submit(slack: LocalSlack, client: WebClient) -> None:
    view = {k: v for k, v in MODAL.items() if k != "submit"}

    reply = _refused(client.views_open, trigger_id=_trigger(slack), view=view)

    assert reply["response_metadata"]["messages"] == [
        "[ERROR] must define `submit` to use an `input` block in modals "
        "[json-pointer:/view/blocks/0]"]


# ------------------------------------------------------------------------ escaping
@pytest.mark.parametrize(("text", "expected"), [
    ("a < b", 'unescaped "<"'),
    ("R&D", 'unescaped "&"'),
    ("<!channel> v3 is done", "<!channel> notifies everyone"),
    ("see <https://evil.example|x>", "link to evil.example is not in link_hosts"),
])
def test_bad_text_is_refused_as_a_local_strict_check(client: WebClient, text: str,
                                                     expected: str) -> None:
    reply = _refused(client.chat_postMessage, channel=CHANNEL, text=text)

    (message,) = reply["response_metadata"]["messages"]
    assert reply["error"] == "invalid_arguments"
    assert message.startswith("[ERROR] local strict check: ") and expected in message
    assert message.endswith("[json-pointer:/text]")


def test_bad_mrkdwn_in_blocks_is_invalid_blocks(client: WebClient) -> None:
    block = {"type": "context", "elements": [{"type": "mrkdwn", "text": "loss < 0.5"}]}

    reply = _refused(client.chat_postMessage, channel=CHANNEL, text="t", blocks=[block])

    (error,) = reply["errors"]
    assert 'unescaped "<"' in error and '"loss < 0.5"' in error
    assert error.endswith("[json-pointer:/blocks/0/elements/0/text]")


def test_well_formed_text_and_blocks_are_accepted(slack: LocalSlack, client: WebClient) -> None:
    text = ("<@U123> in <#C123>: loss &lt; 0.5 &amp; rising, "
            "<http://127.0.0.1:6006/#scalars|TensorBoard>")

    client.chat_postMessage(channel=CHANNEL, text=text, blocks=[_section(text)])
    client.chat_postMessage(channel=CHANNEL, text="New device request", blocks=APPROVAL)

    assert [m["text"] for m in slack.messages(CHANNEL)] == [text, "New device request"]
    assert slack.refusals() == []


def test_plain_text_is_shown_as_typed(client: WebClient) -> None:
    header = {"type": "header", "text": {"type": "plain_text", "text": "R&D: loss < 0.5"}}

    assert client.chat_postMessage(channel=CHANNEL, text="t", blocks=[header])["ok"]


def test_allowed_special_mentions_pass() -> None:
    with LocalSlack(special_mentions={"here"}) as slack:
        web = WebClient(token="xoxb-local", base_url=slack.api_url)

        assert web.chat_postMessage(channel=CHANNEL, text="<!here> on call, please look")["ok"]
        _refused(web.chat_postMessage, channel=CHANNEL, text="<!channel> everyone")


# --------------------------------------------------------- refusals are visible
def test_a_refusal_is_recorded_logged_and_in_the_state(
    slack: LocalSlack, client: WebClient, caplog: pytest.LogCaptureFixture
) -> None:
    blocks = [{"type": "actions", "elements": [_button("go"), _button("go")]}]
    with caplog.at_level(logging.WARNING, logger="bot.localslack.traffic"):
        _refused(client.chat_postMessage, channel=CHANNEL, text="secret-ish body", blocks=blocks)

    (request,) = slack.requests_for("chat.postMessage")
    assert (request.status, request.error) == (200, "invalid_blocks")
    assert request.messages == ('action_id "go" already exists '
                                "[json-pointer:/blocks/0/elements/1/action_id]",)
    (refusal,) = slack.state()["refusals"]
    assert (refusal["method"], refusal["error"]) == ("chat.postMessage", "invalid_blocks")
    assert "[json-pointer:/blocks/0/elements/1/action_id]" in caplog.text
    assert "secret-ish body" not in caplog.text


def test_refusal_renders_as_one_line_for_the_terminal() -> None:
    line = render_refusal({"method": "chat.postMessage", "error": "invalid_blocks", "messages": [
        'action_id "start_preset" already exists [json-pointer:/blocks/3/elements/1/action_id]']})

    assert line == ('! Slack refused chat.postMessage: invalid_blocks — action_id "start_preset" '
                    "already exists [json-pointer:/blocks/3/elements/1/action_id]")


def test_terminal_client_shows_the_bots_refused_calls(slack: LocalSlack,
                                                       client: WebClient) -> None:
    from bot.localslack import run_client

    _refused(client.chat_postMessage, channel=CHANNEL, text="a < b")
    output = io.StringIO()

    run_client("http://127.0.0.1:9/slack/events", slack, "secret", input=io.StringIO(""),
               output=output, poll=False)

    assert "! Slack refused chat.postMessage: invalid_arguments — local strict check" in (
        output.getvalue())


# ------------------------------------------------------------ response_url and acks
def test_invalid_response_url_body_answers_400_with_the_code(slack: LocalSlack) -> None:
    url = slack.new_interaction(CHANNEL, USER)["response_url"]
    blocks = [{"type": "actions", "elements": [_button("go"), _button("go")]}]

    assert _post(url, {"text": "t", "blocks": blocks}) == (400, "invalid_blocks")
    assert _post(url, {"text": "ok"}) == (200, "ok")  # the refused post used none of its 5

    (refused, _) = slack.requests_for("_local.response")
    assert (refused.status, refused.error) == (400, "invalid_blocks")
    assert slack.ephemerals(USER)[0]["text"] == "ok"


def test_view_submission_ack_with_an_invalid_view_is_refused(slack: LocalSlack,
                                                            client: WebClient) -> None:
    opened = client.views_open(trigger_id=_trigger(slack), view=MODAL)["view"]
    bad = dict(MODAL, title={"type": "plain_text", "text": "t" * 25})

    status, body = _post(f"{slack.url}/_local/view_response",
                         {"view_id": opened["id"],
                          "response": {"response_action": "update", "view": bad}})

    assert status == 400 and json.loads(body)["error"] == "invalid_arguments"
    assert slack.views()[0]["title"]["text"] == "Start training"
    assert slack.requests_for("_local.view_response")[0].error == "invalid_arguments"


# --------------------------------------------------------------------- triggers
def test_a_trigger_opens_one_view(slack: LocalSlack, client: WebClient) -> None:
    trigger = _trigger(slack)
    client.views_open(trigger_id=trigger, view=MODAL)

    assert _refused(client.views_open, trigger_id=trigger, view=MODAL)["error"] == (
        "exchanged_trigger_id")


def test_an_unknown_trigger_is_invalid(client: WebClient) -> None:
    assert _refused(client.views_open, trigger_id="1.2.3", view=MODAL)["error"] == (
        "invalid_trigger_id")


def test_a_trigger_expires_after_its_ttl() -> None:
    with LocalSlack(trigger_ttl_s=0.05) as slack:
        web = WebClient(token="xoxb-local", base_url=slack.api_url)
        trigger = _trigger(slack)
        time.sleep(0.1)

        assert _refused(web.views_open, trigger_id=trigger, view=MODAL)["error"] == (
            "expired_trigger_id")


def test_loading_modal_is_updated_by_external_id(slack: LocalSlack, client: WebClient) -> None:
    loading = {"type": "modal", "external_id": "start:U0LOCAL1:1",
               "title": {"type": "plain_text", "text": "Start training"},
               "blocks": [_section("Loading…")]}
    client.views_open(trigger_id=_trigger(slack), view=loading)

    client.views_update(external_id="start:U0LOCAL1:1", view=MODAL)

    (view,) = slack.views()
    assert view["callback_id"] == "start" and view["blocks"][0]["block_id"] == "epochs"


# ------------------------------------------------------------------------ faults
@pytest.mark.parametrize(("method", "error", "kwargs"), [
    ("chat.postMessage", "not_in_channel", {"channel": CHANNEL, "text": "t"}),
    ("chat.postMessage", "channel_not_found", {"channel": "C404", "text": "t"}),
    ("chat.postMessage", "is_archived", {"channel": CHANNEL, "text": "t"}),
    ("chat.postMessage", "token_revoked", {"channel": CHANNEL, "text": "t"}),
    ("chat.postEphemeral", "user_not_in_channel", {"channel": CHANNEL, "user": USER,
                                                   "text": "t"}),
    ("views.open", "expired_trigger_id", {"trigger_id": "1.2.3", "view": MODAL}),
])
def test_injected_error_answers_like_slack(slack: LocalSlack, client: WebClient, method: str,
                                          error: str, kwargs: dict[str, Any]) -> None:
    slack.fail_next(method, error=error)

    reply = _refused(getattr(client, method.replace(".", "_")), **kwargs)

    assert reply == {"ok": False, "error": error}
    assert slack.refusals()[-1]["error"] == error


def test_injected_429_carries_retry_after(slack: LocalSlack, client: WebClient) -> None:
    slack.fail_next("chat.update", retry_after=7)

    with pytest.raises(SlackApiError) as failure:
        client.chat_update(channel=CHANNEL, ts="1.000001", text="t")

    response = failure.value.response
    assert response.status_code == 429 and response.headers["Retry-After"] == "7"
    assert response.data == {"ok": False, "error": "ratelimited"}


def test_injected_500_answers_internal_error(slack: LocalSlack, client: WebClient) -> None:
    slack.fail_next("chat.postMessage", status=500)

    with pytest.raises(SlackApiError) as failure:
        client.chat_postMessage(channel=CHANNEL, text="t")

    assert failure.value.response.status_code == 500
    assert failure.value.response.data == {"ok": False, "error": "internal_error"}


def test_injected_response_url_failures(slack: LocalSlack) -> None:
    url = slack.new_interaction(CHANNEL, USER)["response_url"]
    slack.fail_next("_local.response", error="expired_url")
    slack.fail_next("_local.response", status=500)

    slack.fail_next("_local.response", retry_after=4)

    assert _post(url, {"text": "late"}) == (404, "expired_url")
    assert _post(url, {"text": "later"}) == (500, "internal_error")
    with pytest.raises(urllib.error.HTTPError) as limited:
        urllib.request.urlopen(urllib.request.Request(url, data=b'{"text": "soon"}'))
    assert (limited.value.code, limited.value.headers["Retry-After"]) == (429, "4")
    assert _post(url, {"text": "now"}) == (200, "ok")


def test_ephemeral_to_a_user_who_left_is_user_not_in_channel(slack: LocalSlack,
                                                              client: WebClient) -> None:
    slack.leave(CHANNEL, "U0LOCAL2")

    reply = _refused(client.chat_postEphemeral, channel=CHANNEL, user="U0LOCAL2", text="t")

    assert reply["error"] == "user_not_in_channel"
    assert client.chat_postEphemeral(channel=CHANNEL, user=USER, text="t")["ok"]
