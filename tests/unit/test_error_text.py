"""Unexpected errors: an id for Slack users to hand on; the log's place for a local user."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.domain import InvalidInput
from bot.error_text import report_to_log, user_text

log = logging.getLogger("test.error_text")


@pytest.fixture(autouse=True)
def _slack_wording() -> Iterator[None]:
    yield
    report_to_log(None)


def test_on_slack_the_id_goes_to_the_admin() -> None:
    text = user_text(RuntimeError("secret internals"), log=log)

    assert "error id" in text and "admin" in text and "secret" not in text


def test_a_local_user_is_told_where_the_log_is_not_to_ask_an_admin(tmp_path: Path) -> None:
    report_to_log(tmp_path / "trainbot.log")

    text = user_text(RuntimeError("secret internals"), log=log)

    assert f"{tmp_path / 'trainbot.log'}" in text and "admin" not in text
    assert "secret" not in text


def test_expected_errors_show_their_message_in_either_mode(tmp_path: Path) -> None:
    assert user_text(InvalidInput("bad epochs"), log=log, log_path=tmp_path) == "bad epochs"
