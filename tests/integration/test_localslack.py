"""The local Slack stand-in, Slack-style signing and the terminal client, over loopback.

A real ``slack_sdk.WebClient`` talks to ``LocalSlack``; the client REPL talks to a tiny HTTP
"bot" that checks every request's signature with slack_sdk's own ``SignatureVerifier``.
"""

from __future__ import annotations

import io
import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import (
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.http_retry.builtin_interval_calculators import FixedValueRetryIntervalCalculator
from slack_sdk.signature import SignatureVerifier

from bot.localslack import (
    ButtonNumbers,
    LocalSlack,
    block_actions_body,
    build_view_values,
    render_message,
    run_client,
    sign,
    slash_command_body,
    view_submission_body,
)

SECRET = "local-signing-secret"
CHANNEL = "C0LOCAL"
RERUN = {"type": "actions", "block_id": "version_actions", "elements": [
    {"type": "button", "action_id": "rerun", "value": "job-1:v1",
     "text": {"type": "plain_text", "text": "Rerun"}},
    {"type": "button", "action_id": "tb", "url": "http://127.0.0.1:6006/",
     "text": {"type": "plain_text", "text": "TensorBoard"}},
]}
MODAL = {
    "type": "modal", "callback_id": "start", "private_metadata": "C0LOCAL",
    "title": {"type": "plain_text", "text": "Start training"},
    "submit": {"type": "plain_text", "text": "Start"},
    "blocks": [
        {"type": "input", "block_id": "algorithm", "label": {"type": "plain_text", "text": "Algorithm"},
         "element": {"type": "static_select", "action_id": "pick", "options": [
             {"text": {"type": "plain_text", "text": "Tabular"}, "value": "tabular-classification"},
             {"text": {"type": "plain_text", "text": "Images"}, "value": "image-classification"}]}},
        {"type": "input", "block_id": "epochs", "label": {"type": "plain_text", "text": "Epochs"},
         "element": {"type": "plain_text_input", "action_id": "value", "initial_value": "3"}},
    ],
}


@pytest.fixture
def slack() -> Iterator[LocalSlack]:
    with LocalSlack(usergroups={"ml-approvers": ["U0LOCAL2", "U0LOCAL3"]}) as server:
        yield server


@pytest.fixture
def client(slack: LocalSlack) -> WebClient:
    return WebClient(token="xoxb-local", base_url=slack.api_url)


# ------------------------------------------------------------------------ Web API
def test_post_update_and_thread_reply_round_trip(slack: LocalSlack, client: WebClient) -> None:
    posted = client.chat_postMessage(channel=CHANNEL, text="v1 queued", blocks=[RERUN])
    reply = client.chat_postMessage(channel=CHANNEL, text="running", thread_ts=posted["ts"])
    client.chat_update(channel=CHANNEL, ts=posted["ts"], text="v1 running")

    (message,) = slack.messages(CHANNEL)
    assert posted["message"]["blocks"] == [RERUN]
    assert float(reply["ts"]) > float(posted["ts"])
    assert message["text"] == "v1 running" and message["edit_count"] == 1
    assert [r["text"] for r in message["replies"]] == ["running"]
    replies = client.conversations_replies(channel=CHANNEL, ts=posted["ts"])["messages"]
    assert [m["ts"] for m in replies] == [posted["ts"], reply["ts"]]
    assert client.conversations_history(channel=CHANNEL)["messages"][0]["reply_count"] == 1
    assert len(slack.requests_for("chat.postMessage")) == 2


def test_concurrent_posts_get_unique_increasing_ts(slack: LocalSlack, client: WebClient) -> None:
    threads = [threading.Thread(target=client.chat_postMessage,
                                kwargs={"channel": CHANNEL, "text": str(i)}) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    stamps = [m["ts"] for m in slack.messages(CHANNEL)]
    assert len(set(stamps)) == 20 and stamps == sorted(stamps, key=float)


def test_update_of_unknown_message_is_message_not_found(client: WebClient) -> None:
    with pytest.raises(SlackApiError) as failure:
        client.chat_update(channel=CHANNEL, ts="1.000001", text="x")
    assert failure.value.response["error"] == "message_not_found"


def test_ephemeral_is_kept_for_its_user(slack: LocalSlack, client: WebClient) -> None:
    sent = client.chat_postEphemeral(channel=CHANNEL, user="U0LOCAL1", text="only you")

    (ephemeral,) = slack.ephemerals("U0LOCAL1")
    assert ephemeral["message_ts"] == sent["message_ts"] and ephemeral["text"] == "only you"
    assert slack.ephemerals("U0LOCAL2") == [] and slack.messages(CHANNEL) == []


def test_files_upload_v2_shares_the_file_in_the_thread(
    slack: LocalSlack, client: WebClient, tmp_path: Any
) -> None:
    parent = client.chat_postMessage(channel=CHANNEL, text="v1 failed")
    log = tmp_path / "train.log"
    log.write_bytes(b"epoch 1 loss=nan\n")

    done = client.files_upload_v2(channel=CHANNEL, thread_ts=parent["ts"], file=str(log),
                                  filename="train.log", initial_comment="last log lines")

    (reply,) = slack.messages(CHANNEL)[0]["replies"]
    assert reply["text"] == "last log lines" and reply["files"][0]["id"] == done["file"]["id"]
    (stored,) = slack.files()
    assert stored["content"] == b"epoch 1 loss=nan\n" and stored["name"] == "train.log"
    authed = urllib.request.Request(stored["url_private"],
                                    headers={"Authorization": "Bearer xoxb-local"})
    with urllib.request.urlopen(authed) as response:
        assert response.read() == b"epoch 1 loss=nan\n"


def test_usergroup_members_are_listed(client: WebClient) -> None:
    groups = client.usergroups_list(include_users=True)["usergroups"]
    (group,) = [g for g in groups if g["handle"] == "ml-approvers"]

    members = client.usergroups_users_list(usergroup=group["id"])["users"]

    assert members == ["U0LOCAL2", "U0LOCAL3"]


def test_directory_and_channel_lookups(client: WebClient) -> None:
    posted = client.chat_postMessage(channel=CHANNEL, text="hello")

    assert client.users_info(user="U0LOCAL2")["user"]["name"] == "approver"
    assert "U0LOCAL1" in [m["id"] for m in client.users_list()["members"]]
    assert client.conversations_info(channel=CHANNEL)["channel"]["id"] == CHANNEL
    link = client.chat_getPermalink(channel=CHANNEL, message_ts=posted["ts"])["permalink"]
    assert posted["ts"].replace(".", "") in link
    assert client.auth_test()["user_id"] == "U0BOT"


def test_form_encoded_calls_decode_json_fields(slack: LocalSlack) -> None:
    body = urllib.parse.urlencode({"channel": CHANNEL, "text": "t", "blocks": json.dumps([RERUN])})
    request = urllib.request.Request(slack.api_url + "chat.postMessage", data=body.encode(),
                                     headers={"Authorization": "Bearer xoxb-local"})

    with urllib.request.urlopen(request) as response:
        assert json.load(response)["ok"] is True
    assert slack.messages(CHANNEL)[0]["blocks"] == [RERUN]


def test_wrong_token_is_invalid_auth(slack: LocalSlack) -> None:
    stranger = WebClient(token="xoxb-wrong", base_url=slack.api_url)

    with pytest.raises(SlackApiError) as failure:
        stranger.chat_postMessage(channel=CHANNEL, text="hi")

    assert failure.value.response["error"] == "invalid_auth"
    assert slack.messages(CHANNEL) == []


def test_rate_limited_call_is_retried_after_retry_after(slack: LocalSlack) -> None:
    client = WebClient(token="xoxb-local", base_url=slack.api_url,
                       retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=2)])
    slack.fail_next("chat.postMessage", status=429, retry_after=0)

    assert client.chat_postMessage(channel=CHANNEL, text="hi")["ok"] is True

    assert [r.status for r in slack.requests_for("chat.postMessage")] == [429, 200]
    assert len(slack.messages(CHANNEL)) == 1


def test_server_error_is_retried(slack: LocalSlack) -> None:
    handler = ServerErrorRetryHandler(
        max_retry_count=1, interval_calculator=FixedValueRetryIntervalCalculator(0.01))
    client = WebClient(token="xoxb-local", base_url=slack.api_url, retry_handlers=[handler])
    slack.fail_next("chat.update", status=500)
    posted = client.chat_postMessage(channel=CHANNEL, text="a")

    client.chat_update(channel=CHANNEL, ts=posted["ts"], text="b")

    assert [r.status for r in slack.requests_for("chat.update")] == [500, 200]


def test_injected_error_answers_ok_false(slack: LocalSlack, client: WebClient) -> None:
    slack.fail_next("views.open", error="expired_trigger_id")

    with pytest.raises(SlackApiError) as failure:
        client.views_open(trigger_id=_trigger(slack), view=MODAL)

    assert failure.value.response.status_code == 200
    assert failure.value.response["error"] == "expired_trigger_id"


def test_views_open_update_and_push(slack: LocalSlack, client: WebClient) -> None:
    opened = client.views_open(trigger_id=_trigger(slack), view=MODAL)["view"]
    client.views_update(view_id=opened["id"], hash=opened["hash"],
                        view=dict(MODAL, callback_id="start2"))
    pushed = client.views_push(trigger_id=_trigger(slack),
                               view=dict(MODAL, callback_id="detail"))["view"]

    assert opened["id"].startswith("V")
    assert [v["callback_id"] for v in slack.views()] == ["start2", "detail"]
    assert pushed["previous_view_id"] == opened["id"]
    with pytest.raises(SlackApiError) as failure:
        client.views_update(view_id=opened["id"], hash="stale", view=MODAL)
    assert failure.value.response["error"] == "hash_conflict"


def test_response_url_replaces_original_and_caps_uses(slack: LocalSlack,
                                                      client: WebClient) -> None:
    posted = client.chat_postMessage(channel=CHANNEL, text="approve?", blocks=[RERUN])
    url = slack.new_interaction(CHANNEL, "U0LOCAL2", posted["ts"])["response_url"]

    assert _post_json(url, {"replace_original": True, "text": "approved"}) == 200
    assert _post_json(url, {"text": "noted"}) == 200
    for _ in range(3):
        _post_json(url, {"text": "again"})

    assert slack.messages(CHANNEL)[0]["text"] == "approved"
    assert slack.ephemerals("U0LOCAL2")[0]["text"] == "noted"
    assert _post_json(url, {"text": "sixth"}) == 404


def test_state_long_poll_returns_when_version_moves(slack: LocalSlack,
                                                    client: WebClient) -> None:
    version = slack.version
    timer = threading.Timer(0.2, lambda: client.chat_postMessage(channel=CHANNEL, text="x"))
    timer.start()

    with urllib.request.urlopen(f"{slack.url}/_local/state?since={version}&wait=5") as response:
        state = json.load(response)

    assert state["version"] > version
    assert state["channels"][CHANNEL]["messages"][0]["text"] == "x"
    assert slack.wait_for(lambda: slack.messages(CHANNEL), timeout=1)


# ------------------------------------------------------------------------ signing
def test_signature_verifies_with_slack_sdk() -> None:
    body = slash_command_body("start tabular-classification", user_id="U1", user_name="ana",
                              channel_id=CHANNEL, response_url="http://127.0.0.1/r")

    headers = sign(SECRET, body)

    assert SignatureVerifier(SECRET).is_valid_request(body, headers)
    assert not SignatureVerifier("another-secret").is_valid_request(body, headers)
    stale = sign(SECRET, body, timestamp=int(time.time()) - 600)
    assert not SignatureVerifier(SECRET).is_valid_request(body, stale)


def test_slash_command_body_has_every_field_slack_sends() -> None:
    body = slash_command_body("status", user_id="U1", user_name="ana", channel_id=CHANNEL,
                              response_url="http://r", trigger_id="1.2.3")

    fields = dict(urllib.parse.parse_qsl(body))

    assert set(fields) == {"token", "team_id", "team_domain", "channel_id", "channel_name",
                           "user_id", "user_name", "command", "text", "api_app_id",
                           "is_enterprise_install", "response_url", "trigger_id"}
    assert fields["command"] == "/train" and fields["text"] == "status"


def test_block_actions_body_is_a_payload_like_slacks() -> None:
    message = {"type": "message", "ts": "1.000100", "text": "card", "blocks": [RERUN]}
    body = block_actions_body("rerun", "job-1:v1", user_id="U1", channel_id=CHANNEL,
                              message_ts="1.000100", message=message, trigger_id="1.2.3",
                              response_url="http://r", block_id="version_actions")

    payload = json.loads(dict(urllib.parse.parse_qsl(body))["payload"])

    assert payload["type"] == "block_actions" and payload["message"] == message
    assert payload["container"] == {"type": "message", "message_ts": "1.000100",
                                    "channel_id": CHANNEL, "is_ephemeral": False}
    assert payload["actions"][0]["action_id"] == "rerun"
    assert payload["actions"][0]["block_id"] == "version_actions"
    assert payload["user"]["id"] == "U1" and payload["team"]["id"] == "T0LOCAL"


def test_view_submission_body_carries_state_values() -> None:
    view = dict(MODAL, id="V1", hash="h1")
    values = build_view_values(view, {"algorithm": "image-classification"})

    payload = json.loads(dict(urllib.parse.parse_qsl(
        view_submission_body(view, values, user_id="U1", trigger_id="1.2.3")))["payload"])

    state = payload["view"]["state"]["values"]
    assert payload["type"] == "view_submission" and payload["view"]["callback_id"] == "start"
    assert state["algorithm"]["pick"]["selected_option"]["value"] == "image-classification"
    assert state["epochs"]["value"] == {"type": "plain_text_input", "value": "3"}


# ------------------------------------------------------------------------- client
def test_render_message_numbers_buttons_and_marks_edits() -> None:
    numbers = ButtonNumbers()
    msg = {"ts": "1700000000.000100", "text": "fallback", "edit_count": 1,
           "bot_profile": {"name": "trainbot"},
           "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "*v1* for <@U1>"},
                       "fields": [{"type": "mrkdwn", "text": "*Status*\nRunning"}]},
                      {"type": "context", "elements": [{"type": "mrkdwn", "text": "pool gpu"}]},
                      RERUN]}

    text = render_message(msg, numbers, users={"U1": "ana"})

    assert text.splitlines()[0].startswith("── trainbot") and "(edited)" in text
    assert "*v1* for @ana" in text and "*Status* Running" in text and "pool gpu" in text
    assert "[1] Rerun" in text and "[2] TensorBoard → http://127.0.0.1:6006/" in text
    assert numbers.get(1).action_id == "rerun"
    assert render_message(msg, numbers).count("[1] Rerun") == 1  # numbers are stable


class _FakeBot:
    """A stand-in for the Bolt app: verifies signatures and answers like trainbot would."""

    def __init__(self, slack: LocalSlack) -> None:
        self.slack = slack
        self.web = WebClient(token="xoxb-local", base_url=slack.api_url)
        self.received: list[dict[str, Any]] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/slack/events"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        bot = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers["Content-Length"])).decode()
                valid = SignatureVerifier(SECRET).is_valid_request(raw, dict(self.headers))
                form = dict(urllib.parse.parse_qsl(raw))
                payload = json.loads(form["payload"]) if "payload" in form else form
                bot.received.append({"valid": valid, "payload": payload})
                status, answer = (bot.answer(payload) if valid else (401, ""))
                data = answer.encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler

    def answer(self, payload: dict[str, Any]) -> tuple[int, str]:
        if payload.get("command") == "/train" and payload["text"] == "start":
            self.web.views_open(trigger_id=payload["trigger_id"], view=MODAL)
            return 200, ""
        if payload.get("command") == "/train":
            self.web.chat_postMessage(channel=payload["channel_id"], text="v1 queued",
                                      blocks=[RERUN])
            return 200, json.dumps({"text": "Working on it…"})
        if payload.get("type") == "view_submission":
            epochs = payload["view"]["state"]["values"]["epochs"]["value"]["value"]
            if not epochs.isdigit():
                return 200, json.dumps({"response_action": "errors",
                                        "errors": {"epochs": "must be a whole number"}})
            return 200, ""
        _post_json(payload["response_url"], {"replace_original": True, "text": "rerun asked"})
        return 200, ""

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def bot(slack: LocalSlack) -> Iterator[_FakeBot]:
    fake = _FakeBot(slack)
    yield fake
    fake.close()


def _repl(bot: _FakeBot, slack: LocalSlack, lines: list[str]) -> str:
    output = io.StringIO()
    run_client(bot.url, slack, SECRET, input=io.StringIO("\n".join(lines) + "\n"),
               output=output, poll=False)
    return output.getvalue()


def test_client_sends_signed_slash_command_and_press(bot: _FakeBot, slack: LocalSlack) -> None:
    out = _repl(bot, slack, ["/train start tabular-classification", "/press 2", "/press 1"])

    slash, click = bot.received
    assert slash["valid"] and click["valid"]
    assert slash["payload"]["text"] == "start tabular-classification"
    assert slash["payload"]["user_id"] == "U0LOCAL1"
    action = click["payload"]["actions"][0]
    assert (action["action_id"], action["value"]) == ("rerun", "job-1:v1")
    card = slack.messages(CHANNEL)[0]
    assert click["payload"]["container"]["message_ts"] == card["ts"]
    assert click["payload"]["message"]["ts"] == card["ts"]
    assert "Working on it…" in out and "[1] Rerun" in out
    assert "(link) http://127.0.0.1:6006/" in out
    assert "rerun asked" in out and card["text"] == "rerun asked"


def test_client_acts_as_another_user(bot: _FakeBot, slack: LocalSlack) -> None:
    out = _repl(bot, slack, ["/as U0LOCAL2", "/train status"])

    assert bot.received[0]["payload"]["user_id"] == "U0LOCAL2"
    assert "you are U0LOCAL2 (approver)" in out


def test_client_submits_modal_and_shows_inline_errors(bot: _FakeBot, slack: LocalSlack) -> None:
    out = _repl(bot, slack, ["/train start", "/submit algorithm=tabular-classification epochs=x",
                             "/submit epochs=5"])

    first, second = (r["payload"] for r in bot.received[1:])
    assert first["type"] == "view_submission"
    assert first["view"]["state"]["values"]["algorithm"]["pick"]["selected_option"]["value"] \
        == "tabular-classification"
    assert "modal: Start training" in out and "/submit algorithm=… epochs=…" in out
    assert "✗ epochs: must be a whole number" in out
    assert second["view"]["state"]["values"]["epochs"]["value"]["value"] == "5"
    assert "closed" in out and slack.views() == []


def test_client_rejects_unknown_commands_without_calling_the_bot(bot: _FakeBot,
                                                                  slack: LocalSlack) -> None:
    out = _repl(bot, slack, ["/deploy now", "/press 9"])

    assert bot.received == []
    assert "unknown command" in out and "no button [9]" in out


def _trigger(slack: LocalSlack, user: str = "U0LOCAL1") -> str:
    return slack.new_interaction(CHANNEL, user)["trigger_id"]


def _post_json(url: str, payload: dict[str, Any]) -> int:
    request = urllib.request.Request(url, data=json.dumps(payload).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code

