"""LocalData on its own: which paths a request may name, the words of a refusal, the copy a
run reads, and the TRAINBOT_DATA_DIRS setting."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from bot.adapters.local_data import LocalData, checked_data, local_path, remove_staged
from bot.config import load_settings
from bot.domain import InvalidInput


@pytest.fixture
def data(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "rows.csv").write_text("x,label\n1,0\n")
    return folder


def refused(local: LocalData, uri: str, *, trusted: bool = False) -> str:
    with pytest.raises(InvalidInput) as caught:
        local.resolve(uri, trusted=trusted)
    return caught.value.user_text()


def same_words(a: tuple[str, str], b: tuple[str, str]) -> bool:
    return a[0].replace(a[1], "URI") == b[0].replace(b[1], "URI")


# -- who may name what -------------------------------------------------------------------------


def test_an_allow_listed_file_resolves_as_uri_or_plain_path(data: Path) -> None:
    local = LocalData([data])

    assert local.resolve((data / "rows.csv").as_uri(), trusted=False) == data / "rows.csv"
    assert local.resolve(str(data / "rows.csv"), trusted=False) == data / "rows.csv"
    assert local.resolve(str(data), trusted=False) == data


@pytest.mark.parametrize("uri", [
    "file:///etc/passwd", "file:///nonexistent/x", "/etc/passwd", "file:///root/.ssh/id_rsa",
    "file://otherhost/etc/passwd", "file:relative.csv",
])
def test_untrusted_refusals_all_read_the_same(data: Path, uri: str) -> None:
    local = LocalData([data])
    missing = "file:///nonexistent/other"

    assert same_words((refused(local, uri), uri), (refused(local, missing), missing))
    assert refused(local, uri).startswith(f"`{uri}` isn't a file or folder trainbot may read")


def test_a_symlink_out_of_the_data_folder_is_refused_and_not_named(
        data: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.csv"
    secret.write_text("ssn\n123\n")
    (data / "link.csv").symlink_to(secret)
    (data / "etc").symlink_to("/etc")
    local = LocalData([data])

    for uri in ((data / "link.csv").as_uri(), (data / "etc" / "passwd").as_uri()):
        text = refused(local, uri)
        assert "secret" not in text.replace(uri, "") and "/etc/passwd" not in text.replace(uri, "")


def test_a_symlink_within_the_data_folder_is_fine(data: Path) -> None:
    (data / "latest.csv").symlink_to(data / "rows.csv")

    assert LocalData([data]).resolve(str(data / "latest.csv"), trusted=False) == data / "rows.csv"


def test_a_data_folder_reached_through_a_symlink_still_counts(data: Path, tmp_path: Path) -> None:
    (tmp_path / "alias").symlink_to(data)

    assert LocalData([tmp_path / "alias"]).resolve(str(data / "rows.csv"), trusted=False)


def test_dot_dot_can_not_climb_out(data: Path) -> None:
    uri = f"{data.as_uri()}/../../../etc/passwd"

    assert "isn't a file or folder trainbot may read" in refused(LocalData([data]), uri)


@pytest.mark.parametrize("uri", ["file:///proc/self/environ", "/proc/self/environ",
                                 "file:///sys/kernel", "file:///dev/zero", "/dev/fd/0",
                                 "file:///etc/../proc/self/environ"])
def test_proc_sys_and_dev_are_refused_even_with_root_allow_listed(uri: str) -> None:
    local = LocalData([Path("/")])

    assert "isn't a file or folder trainbot may read" in refused(local, uri)
    assert "is under /proc, /sys or /dev" in refused(local, uri, trusted=True)


def test_a_missing_data_folder_allows_nothing(tmp_path: Path) -> None:
    assert "may read" in refused(LocalData([tmp_path / "none"]), str(tmp_path / "none" / "x"))


def test_trusted_may_name_any_readable_file_and_hears_why_not(tmp_path: Path) -> None:
    mine = tmp_path / "mine.csv"
    mine.write_text("x\n")
    local = LocalData([])

    assert local.resolve(mine.as_uri(), trusted=True) == mine
    uri = (tmp_path / "gone.csv").as_uri()
    assert refused(local, uri, trusted=True) == f"`{uri}` does not exist on this machine."


def test_a_pipe_is_not_data(data: Path) -> None:
    os.mkfifo(data / "pipe")

    assert "may read" in refused(LocalData([data]), str(data / "pipe"))
    assert "isn't a regular file or folder" in refused(LocalData([data]), str(data / "pipe"),
                                                        trusted=True)


def test_a_long_uri_is_shortened_in_the_message() -> None:
    uri = "file:///" + "x" * 1000

    assert len(refused(LocalData([]), uri)) < 500


# -- request time ------------------------------------------------------------------------------


def test_checked_data_writes_plain_paths_as_file_uris_and_passes_others(data: Path) -> None:
    spaced = data / "my rows.csv"
    spaced.write_text("x\n")

    out = checked_data({"train": str(spaced), "validation": (data / "rows.csv").as_uri(),
                        "extra": "s3://bucket/x", "more": "builtin:digits"},
                       allowed=[data], trusted=False)

    assert out == {"train": spaced.as_uri(), "validation": (data / "rows.csv").as_uri(),
                   "extra": "s3://bucket/x", "more": "builtin:digits"}
    assert local_path(out["train"]) == spaced


def test_checked_data_refuses_with_the_uri_given(data: Path) -> None:
    with pytest.raises(InvalidInput, match=r"^`/etc/passwd` isn't a file or folder"):
        checked_data({"train": "/etc/passwd"}, allowed=[data], trusted=False)


# -- the copy a run reads ----------------------------------------------------------------------


def test_a_file_is_staged_as_a_read_only_copy_in_a_read_only_folder(
        data: Path, tmp_path: Path) -> None:
    target = tmp_path / "staged" / "train"

    LocalData([data]).stage((data / "rows.csv").as_uri(), target, trusted=False)

    copy = target / "rows.csv"
    assert copy.read_text() == "x,label\n1,0\n" and not copy.is_symlink()
    assert stat.S_IMODE(copy.stat().st_mode) == 0o444
    assert stat.S_IMODE(target.stat().st_mode) == 0o555
    assert copy.stat().st_ino != (data / "rows.csv").stat().st_ino
    remove_staged(tmp_path / "staged")
    assert not (tmp_path / "staged").exists()


def test_a_folder_is_copied_whole_with_links_inside_it_followed_once(
        data: Path, tmp_path: Path) -> None:
    images = data / "images"
    (images / "cat").mkdir(parents=True)
    (images / "cat" / "1.png").write_bytes(b"png")
    (images / "dog").symlink_to(images / "cat")
    (images / "loop").symlink_to(images)
    (images / "dangling").symlink_to(tmp_path / "nowhere")
    os.mkfifo(images / "pipe")
    target = tmp_path / "staged" / "train"

    LocalData([data]).stage(str(images), target, trusted=False)

    files = sorted(p.relative_to(target).as_posix() for p in target.rglob("*"))
    assert files == ["cat", "cat/1.png", "dog", "dog/1.png"]
    assert all(not p.is_symlink() for p in target.rglob("*"))
    assert stat.S_IMODE((target / "cat").stat().st_mode) == 0o555
    remove_staged(tmp_path / "staged")


def test_a_folder_with_a_link_out_of_the_data_folder_is_refused(
        data: Path, tmp_path: Path) -> None:
    folder = data / "set"
    folder.mkdir()
    (folder / "leak").symlink_to("/etc/passwd")

    with pytest.raises(InvalidInput, match="isn't a file or folder trainbot may read"):
        LocalData([data]).stage(folder.as_uri(), tmp_path / "staged", trusted=False)


def test_a_trusted_folder_may_link_anywhere_readable_but_not_into_proc(
        data: Path, tmp_path: Path) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "rows.csv").symlink_to(data / "rows.csv")
    LocalData([]).stage(str(folder), tmp_path / "a", trusted=True)
    assert (tmp_path / "a" / "rows.csv").read_text() == "x,label\n1,0\n"

    (folder / "env").symlink_to("/proc/self/environ")
    with pytest.raises(InvalidInput, match="/proc, /sys or /dev"):
        LocalData([]).stage(str(folder), tmp_path / "b", trusted=True)


# -- the setting -------------------------------------------------------------------------------


def test_data_dirs_default_to_the_home_data_folder(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRAINBOT_DATA_DIRS", raising=False)

    assert load_settings(home=tmp_path).data_dirs == [tmp_path / "data"]


def test_data_dirs_are_colon_separated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRAINBOT_DATA_DIRS", f"{tmp_path}/a: {tmp_path}/b ::")

    assert load_settings(home=tmp_path).data_dirs == [tmp_path / "a", tmp_path / "b"]
