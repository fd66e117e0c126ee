"""Naming a Slack file, safe stored names and content-addressed local storage: no sockets."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path
from typing import Any

import pytest

from bot.adapters.file_store import LocalFileStorage, S3FileStorage, safe_name
from bot.adapters.slack_files import SlackFileInbox, slack_file_id
from bot.domain import BackendError, ConfigError, InvalidInput

PERMALINK = "https://acme.slack.com/files/U0123ABCD/F0123ABCDE/train.csv"


@pytest.mark.parametrize(("value", "expected"), [
    ("F0123ABCDE", "F0123ABCDE"),
    ("  F0S43PZDF ", "F0S43PZDF"),  # the id in Slack's file object docs
    (PERMALINK, "F0123ABCDE"),
    (f"<{PERMALINK}>", "F0123ABCDE"),
    (f"<{PERMALINK}|train.csv>", "F0123ABCDE"),
    (f"&lt;{PERMALINK}&gt;", "F0123ABCDE"),  # as a slash command's text carries it
    (PERMALINK + "?origin_team=T0123", "F0123ABCDE"),
    ("https://acme.enterprise.slack.com/files/W0123ABCD/F0123ABCDE/x", "F0123ABCDE"),
    ("https://files.slack.com/files-pri/T0123ABCD-F0123ABCDE/train.csv", "F0123ABCDE"),
    ("https://files.slack.com/files-pri/T0123ABCD-F0123ABCDE/download/train.csv",
     "F0123ABCDE"),
])
def test_a_file_id_or_link_names_a_slack_file(value: str, expected: str) -> None:
    assert slack_file_id(value) == expected


@pytest.mark.parametrize("value", [
    "f0123abcde", "F0123", "F0123ABCDE.csv", "s3://bucket/F0123ABCDE", "/data/F0123ABCDE",
    "file:///data/train.csv", "builtin:iris",
    PERMALINK.replace("https://", "http://"),  # Slack's links are https
    "https://evil.example.com/files/U0123ABCD/F0123ABCDE/train.csv",
    "https://acme.slack.com.evil.example.com/files/U0123ABCD/F0123ABCDE/x",
    "https://acme.slack.com/archives/C0123ABCD/p1700000000000100",
    "https://acme.slack.com/files/U0123ABCD/",
    "",
])
def test_anything_else_is_not_a_slack_file(value: str) -> None:
    assert slack_file_id(value) is None


def test_a_stand_ins_links_count_on_its_own_host_only() -> None:
    link = "http://127.0.0.1:3001/files/U0LOCAL1/F0L0000001/train.csv"

    assert slack_file_id(link, own_netloc="127.0.0.1:3001") == "F0L0000001"
    assert slack_file_id(link, own_netloc="127.0.0.1:3002") is None
    assert slack_file_id(link) is None


class _FakeSlack:
    """A WebClient's surface the inbox uses: its token, base URL and ``files_info``."""

    def __init__(self, file: dict[str, Any], base_url: str = "https://slack.com/api/") -> None:
        self.token = "xoxb-fake"
        self.base_url = base_url
        self.file = file
        self.calls: list[str] = []

    def files_info(self, *, file: str) -> dict[str, Any]:
        self.calls.append(file)
        return {"ok": True, "file": self.file}


def _file(**changes: Any) -> dict[str, Any]:
    return {"id": "F0123ABCDE", "name": "train.csv", "filetype": "csv", "size": 10,
            "user": "U1", "channels": ["C1"], "groups": [], "ims": [],
            "url_private_download": "https://files.slack.com/files-pri/T1-F0123ABCDE/"
                                    "download/train.csv"} | changes


def test_is_file_reference_knows_the_clients_own_host(tmp_path: Path) -> None:
    local = SlackFileInbox(_FakeSlack(_file(), "http://127.0.0.1:3001/api/"),
                           LocalFileStorage(tmp_path))
    real = SlackFileInbox(_FakeSlack(_file()), LocalFileStorage(tmp_path))
    link = "http://127.0.0.1:3001/files/U0LOCAL1/F0L0000001/a.csv"

    assert local.is_file_reference(link) and not real.is_file_reference(link)
    assert local.is_file_reference(PERMALINK) and real.is_file_reference(PERMALINK)
    assert not real.is_file_reference("s3://bucket/train.csv")


def test_a_reference_that_names_no_file_says_how_to_name_one(tmp_path: Path) -> None:
    inbox = SlackFileInbox(_FakeSlack(_file()), LocalFileStorage(tmp_path))

    with pytest.raises(InvalidInput) as raised:
        inbox.fetch("s3://bucket/x", user="U1", channel="C1")

    assert "isn't a Slack file" in raised.value.message and "F…" in str(raised.value.hint)


@pytest.mark.parametrize("url", [
    "https://evil.example.com/files-pri/T1-F0123ABCDE/download/train.csv",
    "http://files.slack.com/files-pri/T1-F0123ABCDE/download/train.csv",
    "",
])
def test_the_token_goes_to_slacks_own_hosts_only(tmp_path: Path, url: str) -> None:
    inbox = SlackFileInbox(_FakeSlack(_file(url_private_download=url)),
                           LocalFileStorage(tmp_path))

    with pytest.raises(BackendError) as raised:
        inbox.fetch("F0123ABCDE", user="U1", channel="C1")

    assert "no download address" in raised.value.message


def test_a_file_with_no_extension_is_named_so(tmp_path: Path) -> None:
    inbox = SlackFileInbox(_FakeSlack(_file(name="README", filetype="")),
                           LocalFileStorage(tmp_path))

    with pytest.raises(InvalidInput, match="a file with no extension"):
        inbox.fetch("F0123ABCDE", user="U1", channel="C1")


def test_an_external_file_is_refused(tmp_path: Path) -> None:
    inbox = SlackFileInbox(_FakeSlack(_file(is_external=True)), LocalFileStorage(tmp_path))

    with pytest.raises(InvalidInput, match="outside Slack"):
        inbox.fetch("F0123ABCDE", user="U1", channel="C1")


@pytest.mark.parametrize(("name", "expected"), [
    ("train.csv", "train.csv"),
    ("train data (v2).csv", "train_data_v2_.csv"),
    ("../../etc/passwd", "passwd"),
    ("C:\\Users\\me\\x.csv", "x.csv"),
    (".bashrc", "bashrc"),
    ("ünïcode.tsv", "n_code.tsv"),
    ("...", "data"),
    ("a" * 300 + ".csv", "a" * 116 + ".csv"),
])
def test_safe_name(name: str, expected: str) -> None:
    assert safe_name(name) == expected


def _download(tmp_path: Path, data: bytes, storage: LocalFileStorage) -> tuple[Path, str]:
    path = storage.scratch / f"dl-{len(list(storage.scratch.iterdir()))}"
    path.write_bytes(data)
    return path, hashlib.sha256(data).hexdigest()


def test_local_storage_keeps_the_bytes_once_and_private(tmp_path: Path) -> None:
    storage = LocalFileStorage(tmp_path / "data")
    path, sha = _download(tmp_path, b"a,b\n", storage)

    uri = storage.put(path, sha256=sha, name="train.csv")
    again = storage.put(path, sha256=sha, name="train.csv")
    renamed = storage.put(path, sha256=sha, name="copy.csv")

    first = tmp_path / "data" / sha / "train.csv"
    assert uri == again == first.as_uri()
    second = Path(renamed.removeprefix("file://"))
    assert first.stat().st_ino == second.stat().st_ino  # a second name, not a second copy
    assert stat.S_IMODE(first.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "data" / sha).stat().st_mode) == 0o700
    assert stat.S_IMODE(storage.scratch.stat().st_mode) == 0o700


def test_storage_takes_only_a_hash_and_a_safe_name(tmp_path: Path) -> None:
    storage = LocalFileStorage(tmp_path / "data")
    path, sha = _download(tmp_path, b"x", storage)

    with pytest.raises(ValueError):
        storage.put(path, sha256="../../x", name="train.csv")
    with pytest.raises(ValueError):
        storage.put(path, sha256=sha, name="../train.csv")


def test_s3_storage_needs_a_team_that_fits_a_key() -> None:
    with pytest.raises(ConfigError):
        S3FileStorage(object(), "bucket", "../other")
    assert S3FileStorage(object(), "b", "T0123").key("ab" * 32, "x.csv") \
        == f"trainbot/data/T0123/{'ab' * 32}/x.csv"


def test_the_s3_store_owns_all_of_trainbots_prefix_in_its_bucket() -> None:
    from bot.adapters.file_store import S3FileStorage

    storage = S3FileStorage(object(), "team-ml", "T1")
    assert storage.owns("s3://team-ml/trainbot/data/T2/abc/x.csv")
    assert storage.owns("s3://team-ml/trainbot/output/other-job/model.tar.gz")
    assert storage.owns("s3://team-ml/trainbot/")
    assert not storage.owns("s3://team-ml/datasets/churn.csv")
    assert not storage.owns("s3://other-bucket/trainbot/data/x.csv")
