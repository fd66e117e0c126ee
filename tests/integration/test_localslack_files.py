"""Files on the local Slack, as Slack does them: users share them, ``files.info`` describes
them, ``url_private_download`` serves them to the bot token only, and a modal's
``file_input`` submits them.

The shapes come from Slack's docs: the file object (https://api.slack.com/types/file),
``files.info`` (https://api.slack.com/methods/files.info) and the file input element
(https://docs.slack.dev/reference/block-kit/block-elements/file-input-element).
"""

from __future__ import annotations

import io
import json
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.localslack import LocalSlack, build_view_values, run_client
from bot.localslack.files import DEFAULT_SCOPES

MANIFEST = Path(__file__).resolve().parents[2] / "infra" / "slack-app-manifest.yml"

CHANNEL = "C0LOCAL"
SECRET = "local-signing-secret"
CSV = b"x,y\n1,0\n2,1\n"
# Slack's own example of a file_input (the element reference page), in a modal.
FILE_INPUT = {"type": "input", "block_id": "input_block_id",
              "label": {"type": "plain_text", "text": "Upload Files"},
              "element": {"type": "file_input", "action_id": "file_input_action_id_1",
                          "filetypes": ["csv", "tsv"], "max_files": 2}}
MODAL = {"type": "modal", "callback_id": "start",
         "title": {"type": "plain_text", "text": "Start training"},
         "submit": {"type": "plain_text", "text": "Start"}, "blocks": [FILE_INPUT]}
FILE_KEYS = {"id", "created", "timestamp", "name", "title", "mimetype", "filetype",
             "pretty_type", "user", "editable", "size", "mode", "is_external", "external_type",
             "is_public", "public_url_shared", "display_as_bot", "username", "url_private",
             "url_private_download", "permalink", "permalink_public", "comments_count",
             "is_starred", "shares", "channels", "groups", "ims", "has_rich_preview"}


@pytest.fixture
def slack() -> Iterator[LocalSlack]:
    with LocalSlack(channels={"G0SECRET": "secret-project"}) as server:
        with server._ws.lock:  # a private channel, as conversations.info would show it
            server._ws.channels["G0SECRET"]["is_private"] = True
        yield server


@pytest.fixture
def client(slack: LocalSlack) -> WebClient:
    return WebClient(token="xoxb-local", base_url=slack.api_url)


def _get(url: str, token: str | None = None) -> tuple[int, str, bytes]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers)) as response:
            return response.status, response.headers["Content-Type"], response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read()


# ------------------------------------------------------------------- files.info
def test_files_info_answers_slacks_file_object(slack: LocalSlack, client: WebClient) -> None:
    shared = slack.share_file(CHANNEL, "U0LOCAL1", "train data.csv", CSV)

    answer = client.files_info(file=shared["id"])

    file = answer["file"]
    assert set(file) >= FILE_KEYS and answer["comments"] == []
    assert (file["name"], file["filetype"], file["mimetype"], file["size"], file["user"]) \
        == ("train data.csv", "csv", "text/csv", len(CSV), "U0LOCAL1")
    assert (file["channels"], file["groups"], file["ims"], file["is_public"]) \
        == ([CHANNEL], [], [], True)
    assert file["shares"]["public"][CHANNEL][0]["ts"] == slack.messages(CHANNEL)[0]["ts"]
    base = slack.url
    assert file["permalink"] == f"{base}/files/U0LOCAL1/{file['id']}/train%20data.csv"
    assert file["url_private_download"] \
        == f"{base}/files-pri/T0LOCAL-{file['id']}/download/train%20data.csv"
    assert "uploaded" not in file and "deleted" not in file


def test_a_users_share_is_a_file_share_message(slack: LocalSlack) -> None:
    shared = slack.share_file(CHANNEL, "U0LOCAL2", "labels.tsv", b"a\tb\n", comment="new labels")

    (message,) = slack.messages(CHANNEL)
    assert (message["subtype"], message["user"], message["text"]) \
        == ("file_share", "U0LOCAL2", "new labels")
    assert message["files"][0]["id"] == shared["id"] and "bot_id" not in message


def test_a_file_in_a_private_channel_is_listed_under_groups(slack: LocalSlack,
                                                           client: WebClient) -> None:
    shared = slack.share_file("G0SECRET", "U0LOCAL1", "x.csv", CSV)

    file = client.files_info(file=shared["id"])["file"]
    assert (file["channels"], file["groups"], file["is_public"]) == ([], ["G0SECRET"], False)
    assert "G0SECRET" in file["shares"]["private"]


def test_an_uploaded_file_from_a_modal_is_shared_nowhere(slack: LocalSlack,
                                                        client: WebClient) -> None:
    uploaded = slack.upload_file("U0LOCAL1", "mine.csv", CSV)

    file = client.files_info(file=uploaded["id"])["file"]
    assert (file["channels"], file["groups"], file["ims"], file["user"]) \
        == ([], [], [], "U0LOCAL1")
    assert slack.messages(CHANNEL) == []


@pytest.mark.parametrize(("setup", "error"), [
    (lambda s: "F0L9999999", "file_not_found"),
    (lambda s: (f := s.share_file(CHANNEL, "U0LOCAL1", "a.csv", CSV)["id"],
                s.delete_file(f))[0], "file_deleted"),
])
def test_files_info_errors_are_slacks(slack: LocalSlack, client: WebClient, setup: Any,
                                      error: str) -> None:
    file_id = setup(slack)

    with pytest.raises(SlackApiError) as raised:
        client.files_info(file=file_id)

    assert raised.value.response["error"] == error


def test_files_info_without_a_file_is_invalid_arguments(client: WebClient) -> None:
    with pytest.raises(SlackApiError) as raised:
        client.api_call("files.info", params={})

    assert raised.value.response["error"] == "invalid_arguments"
    assert "missing required field: file" in raised.value.response["response_metadata"][
        "messages"][0]


def test_files_info_without_files_read_is_missing_scope() -> None:
    with LocalSlack(scopes=("commands", "chat:write")) as slack:
        shared = slack.share_file(CHANNEL, "U0LOCAL1", "a.csv", CSV)
        client = WebClient(token="xoxb-local", base_url=slack.api_url)

        with pytest.raises(SlackApiError) as raised:
            client.files_info(file=shared["id"])

        answer = raised.value.response
        assert (answer["error"], answer["needed"], answer["provided"]) \
            == ("missing_scope", "files:read", "chat:write,commands")
        # The token can't read files: their URLs give it the sign-in page.
        assert _get(shared["url_private_download"], "xoxb-local")[1].startswith("text/html")


def test_the_bot_token_has_the_manifests_scopes() -> None:
    manifest = yaml.safe_load(MANIFEST.read_text())

    assert set(manifest["oauth_config"]["scopes"]["bot"]) == DEFAULT_SCOPES


# -------------------------------------------------------------------- downloads
def test_a_download_needs_the_bot_token(slack: LocalSlack) -> None:
    shared = slack.share_file(CHANNEL, "U0LOCAL1", "a.csv", CSV)
    url = shared["url_private_download"]

    status, kind, body = _get(url, "xoxb-local")
    assert (status, kind, body) == (200, "text/csv", CSV)
    for token in (None, "xoxb-someone-else"):
        status, kind, body = _get(url, token)
        # Slack's answer: its sign-in page, with 200 — a downloader must notice.
        assert status == 200 and kind.startswith("text/html") and b"Sign in" in body
    errors = [r.error for r in slack.requests_for("_local.download")]
    assert errors == [None, "not_authed", "invalid_auth"]


def test_a_deleted_or_unknown_file_is_not_served(slack: LocalSlack) -> None:
    shared = slack.share_file(CHANNEL, "U0LOCAL1", "a.csv", CSV)
    slack.delete_file(shared["id"])

    assert _get(shared["url_private_download"], "xoxb-local")[0] == 404
    other = shared["url_private"].replace(shared["id"], "F0L9999999")
    assert _get(other, "xoxb-local")[0] == 404


def test_a_permalink_may_be_posted_and_is_a_page_for_people(slack: LocalSlack,
                                                           client: WebClient) -> None:
    shared = slack.share_file(CHANNEL, "U0LOCAL1", "R&D <data>.csv", CSV)

    client.chat_postMessage(channel=CHANNEL, text=f"using <{shared['permalink']}|R&amp;D data>")

    assert slack.refusals() == []
    assert _get(shared["permalink"])[1].startswith("text/html")


def test_a_user_file_is_uploaded_over_http(slack: LocalSlack) -> None:
    query = urllib.parse.urlencode({"user": "U0LOCAL1", "filename": "b.csv", "channel": CHANNEL})
    request = urllib.request.Request(f"{slack.url}/_local/user_file?{query}", data=CSV)
    with urllib.request.urlopen(request) as response:
        answer = json.loads(response.read())

    assert answer["ok"] and answer["file"]["channels"] == [CHANNEL]
    bad = urllib.request.Request(f"{slack.url}/_local/user_file?user=U0NOBODY&filename=b.csv",
                                 data=CSV)
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(bad)
    assert json.loads(raised.value.read())["error"] == "user_not_found"


# ------------------------------------------------------------------- file_input
def _modal_with(element: dict[str, Any]) -> dict[str, Any]:
    return dict(MODAL, blocks=[dict(FILE_INPUT, element=element)])


def test_a_file_input_modal_opens(slack: LocalSlack, client: WebClient) -> None:
    trigger = slack.new_interaction(CHANNEL, "U0LOCAL1")["trigger_id"]

    view = client.views_open(trigger_id=trigger, view=MODAL)["view"]

    assert view["blocks"][0]["element"]["type"] == "file_input"


@pytest.mark.parametrize(("change", "where", "message"), [
    ({"max_files": 0}, "/element/max_files", "must be between 1 and 10"),
    ({"max_files": 11}, "/element/max_files", "must be between 1 and 10"),
    ({"max_files": "3"}, "/element/max_files", "must be between 1 and 10"),
    ({"filetypes": "csv"}, "/element/filetypes", "must be an array of file extensions"),
])
def test_a_bad_file_input_is_refused(slack: LocalSlack, client: WebClient,
                                     change: dict[str, Any], where: str, message: str) -> None:
    trigger = slack.new_interaction(CHANNEL, "U0LOCAL1")["trigger_id"]

    with pytest.raises(SlackApiError) as raised:
        client.views_open(trigger_id=trigger, view=_modal_with(dict(FILE_INPUT["element"],
                                                                    **change)))

    answer = raised.value.response
    assert answer["error"] == "invalid_arguments"
    assert f"{message} [json-pointer:/view/blocks/0{where}]" \
        in answer["response_metadata"]["messages"][0]


def test_a_file_input_outside_an_input_block_is_refused(client: WebClient) -> None:
    blocks = [{"type": "actions", "elements": [{"type": "file_input", "action_id": "f"}]}]

    with pytest.raises(SlackApiError) as raised:
        client.chat_postMessage(channel=CHANNEL, text="pick", blocks=blocks)

    assert "file_input can only be used in an input block" in raised.value.response["errors"][0]


def test_file_input_state_carries_the_file_objects(slack: LocalSlack) -> None:
    files = {"@a.csv": slack.upload_file("U0LOCAL1", "a.csv", CSV),
             "@b.tsv": slack.upload_file("U0LOCAL1", "b.tsv", CSV)}

    values = build_view_values(MODAL, {"input_block_id": "@a.csv,@b.tsv"}, files=files.get)
    empty = build_view_values(MODAL, {})

    state = values["input_block_id"]["file_input_action_id_1"]
    assert state == {"type": "file_input", "files": list(files.values())}
    assert empty["input_block_id"]["file_input_action_id_1"] == {"type": "file_input",
                                                                  "files": []}


@pytest.mark.parametrize(("text", "message"), [
    ("@a.csv,@b.csv,@c.csv", "at most 2 file(s)"),
    ("@model.exe", "not one of the accepted types: csv, tsv"),
])
def test_file_input_refuses_what_slacks_picker_would(slack: LocalSlack, text: str,
                                                     message: str) -> None:
    def upload(name: str) -> dict[str, Any]:
        return slack.upload_file("U0LOCAL1", name.lstrip("@"), CSV)

    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        build_view_values(MODAL, {"input_block_id": text}, files=upload)
    with pytest.raises(ValueError, match="KEY=@PATH"):
        build_view_values(MODAL, {"input_block_id": "@a.csv"})


# ----------------------------------------------------------------- the terminal
class _RecordingBot:
    """Takes every delivery with an empty 200 and keeps its payload."""

    def __init__(self) -> None:
        self.payloads: list[dict[str, Any]] = []
        received = self.payloads

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                form = dict(urllib.parse.parse_qsl(
                    self.rfile.read(int(self.headers["Content-Length"])).decode()))
                received.append(json.loads(form["payload"]) if "payload" in form else form)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/slack/events"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def bot() -> Iterator[_RecordingBot]:
    recording = _RecordingBot()
    yield recording
    recording.close()


def _repl(bot: _RecordingBot, slack: LocalSlack, lines: list[str]) -> str:
    output = io.StringIO()
    run_client(bot.url, slack, SECRET, input=io.StringIO("\n".join(lines) + "\n"),
               output=output, poll=False)
    return output.getvalue()


def test_upload_shares_a_local_file_as_the_user(bot: _RecordingBot, slack: LocalSlack,
                                                tmp_path: Path) -> None:
    data = tmp_path / "train.csv"
    data.write_bytes(CSV)

    out = _repl(bot, slack, [f"/upload {data}", f"/upload {tmp_path / 'missing.csv'}"])

    (file,) = slack.files()
    assert (file["user"], file["channels"], file["content"]) == ("U0LOCAL1", [CHANNEL], CSV)
    assert f"as {file['id']}" in out and file["permalink"] in out
    assert "[file] train.csv" in out and "cannot read" in out


def test_submit_uploads_a_file_for_a_file_input(bot: _RecordingBot, slack: LocalSlack,
                                                client: WebClient, tmp_path: Path) -> None:
    data = tmp_path / "train.csv"
    data.write_bytes(CSV)
    client.views_open(trigger_id=slack.new_interaction(CHANNEL, "U0LOCAL1")["trigger_id"],
                      view=MODAL)

    out = _repl(bot, slack, [f"/submit input_block_id=@{data}"])

    (submission,) = bot.payloads
    state = submission["view"]["state"]["values"]["input_block_id"]["file_input_action_id_1"]
    (file,) = state["files"]
    assert state["type"] == "file_input" and file["name"] == "train.csv"
    assert (file["user"], file["channels"]) == ("U0LOCAL1", [])
    assert client.files_info(file=file["id"])["file"]["size"] == len(CSV)
    assert "up to 2 file(s), csv, tsv" in out
