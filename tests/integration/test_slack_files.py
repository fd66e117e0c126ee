"""The Slack FileInbox against a real local Slack and the real WebClient: a file shared in
the channel becomes data stored once; anything else is refused without a word about which
files exist. S3 storage runs against moto."""

from __future__ import annotations

import hashlib
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws
from slack_sdk import WebClient

from bot.adapters.file_store import LocalFileStorage, S3FileStorage
from bot.adapters.slack_files import NOT_VISIBLE, SlackFileInbox
from bot.domain import BackendError, InvalidInput, NotAllowed
from bot.localslack import LocalSlack

CHANNEL = "C0LOCAL"
ELSEWHERE = "C0OTHER"
ME, SOMEONE = "U0LOCAL1", "U0LOCAL2"
CSV = b"x,y\n1,0\n2,1\n3,0\n"
SHA = hashlib.sha256(CSV).hexdigest()


@pytest.fixture
def slack() -> Iterator[LocalSlack]:
    with LocalSlack(channels={ELSEWHERE: "elsewhere"}) as server:
        yield server


@pytest.fixture
def client(slack: LocalSlack) -> WebClient:
    return WebClient(token="xoxb-local", base_url=slack.api_url)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "home" / "data"


@pytest.fixture
def inbox(client: WebClient, root: Path) -> SlackFileInbox:
    return SlackFileInbox(client, LocalFileStorage(root))


def _stored(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_a_csv_shared_in_the_channel_is_stored_once(slack: LocalSlack, inbox: SlackFileInbox,
                                                    root: Path) -> None:
    shared = slack.share_file(CHANNEL, ME, "train.csv", CSV)

    first = inbox.fetch(shared["id"], user=ME, channel=CHANNEL)
    (path,) = _stored(root)
    before = path.stat()
    again = inbox.fetch(shared["permalink"], user=ME, channel=CHANNEL)

    assert path == root / SHA / "train.csv" and path.read_bytes() == CSV
    assert first.uri == again.uri == path.as_uri()
    assert (first.name, first.sha256, first.size, first.origin) \
        == ("train.csv", SHA, len(CSV), f"slack:{shared['id']}")
    after = path.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert _stored(root) == [path]  # no second copy, no leftover download
    assert stat.S_IMODE(after.st_mode) == 0o600
    assert stat.S_IMODE((root / SHA).stat().st_mode) == 0o700


def test_someone_elses_file_shared_in_this_channel_may_be_used(
        slack: LocalSlack, inbox: SlackFileInbox) -> None:
    shared = slack.share_file(CHANNEL, SOMEONE, "labels.csv", CSV)

    stored = inbox.fetch(shared["id"], user=ME, channel=CHANNEL)

    assert stored.sha256 == SHA


def test_the_download_carries_the_bot_token(slack: LocalSlack, inbox: SlackFileInbox) -> None:
    shared = slack.share_file(CHANNEL, ME, "train.csv", CSV)

    inbox.fetch(shared["id"], user=ME, channel=CHANNEL)

    (download,) = slack.requests_for("_local.download")
    assert download.error is None and download.status == 200
    assert slack.refusals() == []


@pytest.mark.parametrize("form", ["{id}", "{permalink}", "<{permalink}|train.csv>",
                                  "&lt;{permalink}&gt;", "{url_private}"])
def test_a_permalink_or_a_bare_id_names_the_file(slack: LocalSlack, inbox: SlackFileInbox,
                                                 form: str) -> None:
    shared = slack.share_file(CHANNEL, ME, "train.csv", CSV)
    reference = form.format(**shared)

    assert inbox.is_file_reference(reference)
    assert inbox.fetch(reference, user=ME, channel=CHANNEL).origin == f"slack:{shared['id']}"


def test_a_users_own_file_from_a_modal_may_be_used(slack: LocalSlack,
                                                   inbox: SlackFileInbox) -> None:
    uploaded = slack.upload_file(ME, "mine.csv", CSV)

    assert inbox.fetch(uploaded["id"], user=ME, channel=CHANNEL).sha256 == SHA
    assert inbox.fetch(uploaded["id"], user=ME, channel=None).sha256 == SHA


def _refusal(inbox: SlackFileInbox, reference: str, **where: Any) -> NotAllowed:
    with pytest.raises(NotAllowed) as raised:
        inbox.fetch(reference, **({"user": ME, "channel": CHANNEL} | where))
    return raised.value


def test_a_file_shared_elsewhere_by_someone_else_is_refused_as_not_found(
        slack: LocalSlack, inbox: SlackFileInbox, root: Path) -> None:
    elsewhere = slack.share_file(ELSEWHERE, SOMEONE, "secret.csv", CSV)
    private = slack.upload_file(SOMEONE, "theirs.csv", CSV)

    refusals = [_refusal(inbox, elsewhere["id"]), _refusal(inbox, elsewhere["permalink"]),
                _refusal(inbox, private["id"]), _refusal(inbox, elsewhere["id"], channel=None)]

    assert {r.user_text() for r in refusals} == {NOT_VISIBLE}
    assert slack.requests_for("_local.download") == [] and _stored(root) == []


def test_a_missing_or_deleted_file_gets_the_same_answer(slack: LocalSlack,
                                                        inbox: SlackFileInbox) -> None:
    deleted = slack.share_file(CHANNEL, ME, "gone.csv", CSV)
    slack.delete_file(deleted["id"])

    missing = _refusal(inbox, "F0L9999999")
    gone = _refusal(inbox, deleted["id"])

    assert missing.user_text() == gone.user_text() == NOT_VISIBLE


def test_an_oversize_file_is_refused_before_its_download(slack: LocalSlack, client: WebClient,
                                                         root: Path) -> None:
    small = SlackFileInbox(client, LocalFileStorage(root), max_bytes=10)
    shared = slack.share_file(CHANNEL, ME, "train.csv", CSV)

    with pytest.raises(InvalidInput) as raised:
        small.fetch(shared["id"], user=ME, channel=CHANNEL)

    assert f"is {len(CSV)} bytes" in raised.value.message and "up to 10 bytes" in raised.value.message
    assert raised.value.hint and "--data" in raised.value.hint
    assert slack.requests_for("_local.download") == []


def test_the_limit_holds_while_streaming_whatever_the_size_said(
        slack: LocalSlack, client: WebClient, root: Path) -> None:
    small = SlackFileInbox(client, LocalFileStorage(root), max_bytes=10)
    shared = slack.share_file(CHANNEL, ME, "train.csv", CSV)
    with slack._ws.lock:  # files.info understates it
        slack._ws.files[shared["id"]]["size"] = 4

    with pytest.raises(InvalidInput) as raised:
        small.fetch(shared["id"], user=ME, channel=CHANNEL)

    assert "over 10 bytes" in raised.value.message
    assert [p.name for p in _stored(root)] == []  # the partial download is gone


def test_a_wrong_type_is_refused_naming_the_types_taken(slack: LocalSlack,
                                                        inbox: SlackFileInbox) -> None:
    shared = slack.share_file(CHANNEL, ME, "model.exe", b"MZ\x90\x00")

    with pytest.raises(InvalidInput) as raised:
        inbox.fetch(shared["id"], user=ME, channel=CHANNEL)

    assert "`model.exe` is a .exe file" in raised.value.message
    assert ".csv, .tsv" in raised.value.message
    assert slack.requests_for("_local.download") == []


def test_a_wrong_token_gets_the_sign_in_page_and_nothing_is_stored(
        slack: LocalSlack, client: WebClient, root: Path) -> None:
    stale = SlackFileInbox(client, LocalFileStorage(root), token="xoxb-stale")
    shared = slack.share_file(CHANNEL, ME, "train.csv", CSV)

    with pytest.raises(BackendError) as raised:
        stale.fetch(shared["id"], user=ME, channel=CHANNEL)

    assert "sign-in page" in raised.value.message and "SLACK_BOT_TOKEN" in str(raised.value.hint)
    assert [r.error for r in slack.requests_for("_local.download")] == ["invalid_auth"]
    assert _stored(root) == []


def test_without_files_read_the_answer_says_which_scope(root: Path) -> None:
    with LocalSlack(scopes=("commands", "chat:write", "files:write")) as slack:
        shared = slack.share_file(CHANNEL, ME, "train.csv", CSV)
        inbox = SlackFileInbox(WebClient(token="xoxb-local", base_url=slack.api_url),
                               LocalFileStorage(root))

        with pytest.raises(BackendError) as raised:
            inbox.fetch(shared["id"], user=ME, channel=CHANNEL)

    assert "files:read" in raised.value.message and "reinstall" in str(raised.value.hint)


def test_an_unreachable_slack_is_a_backend_error(root: Path) -> None:
    with LocalSlack() as slack:
        client = WebClient(token="xoxb-local", base_url=slack.api_url, timeout=2)
    inbox = SlackFileInbox(client, LocalFileStorage(root))

    with pytest.raises(BackendError) as raised:
        inbox.fetch("F0L0000001", user=ME, channel=CHANNEL)

    assert "connection_error" in raised.value.message


# ----------------------------------------------------------------------------- S3
@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(key, "testing")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="team-data")
        yield client


def test_s3_storage_puts_the_bytes_once(slack: LocalSlack, client: WebClient,
                                        s3: Any) -> None:
    puts: list[str] = []
    s3.meta.events.register("before-call.s3.PutObject",
                            lambda params, **_: puts.append(params["url_path"]))
    inbox = SlackFileInbox(client, S3FileStorage(s3, "team-data", "T0LOCAL"))
    shared = slack.share_file(CHANNEL, ME, "train data.csv", CSV)

    first = inbox.fetch(shared["id"], user=ME, channel=CHANNEL)
    again = inbox.fetch(shared["permalink"], user=ME, channel=CHANNEL)

    key = f"trainbot/data/T0LOCAL/{SHA}/train_data.csv"
    assert first.uri == again.uri == f"s3://team-data/{key}" and len(puts) == 1
    stored = s3.get_object(Bucket="team-data", Key=key)
    assert stored["Body"].read() == CSV
    assert stored["ServerSideEncryption"] == "AES256"
    assert stored["Metadata"] == {"trainbot-sha256": SHA}


def test_s3_storage_without_access_says_what_the_role_needs(slack: LocalSlack,
                                                            client: WebClient, s3: Any) -> None:
    inbox = SlackFileInbox(client, S3FileStorage(s3, "no-such-bucket", "T0LOCAL"))
    shared = slack.share_file(CHANNEL, ME, "train.csv", CSV)

    with pytest.raises(BackendError) as raised:
        inbox.fetch(shared["id"], user=ME, channel=CHANNEL)

    assert "s3://no-such-bucket" in raised.value.message
    assert "s3:PutObject" in str(raised.value.hint)
