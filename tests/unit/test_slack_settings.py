"""Slack settings: read from the environment, secrets that never print."""

from __future__ import annotations

import dataclasses

import pytest

from bot.slack.settings import DEFAULT_API_URL, Secret, SlackSettings


def test_secrets_never_print() -> None:
    s = SlackSettings(signing_secret="sign-123", bot_token="xoxb-456")
    for text in (repr(s), str(s), repr(s.bot_token), f"{s.signing_secret}"):
        assert "sign-123" not in text and "xoxb-456" not in text
    assert s.signing_secret is not None and s.signing_secret.get_secret_value() == "sign-123"


def test_read_from_slack_variables_with_empty_meaning_unset() -> None:
    s = SlackSettings.from_env({"SLACK_SIGNING_SECRET": " sign ", "SLACK_BOT_TOKEN": "",
                                "SLACK_API_URL": "http://127.0.0.1:1/api/"})
    assert s.signing_secret == Secret("sign")
    assert s.bot_token is None and s.app_token is None
    assert s.api_url == "http://127.0.0.1:1/api/"
    assert SlackSettings.from_env({}).api_url == DEFAULT_API_URL


def test_overrides_win_over_the_environment() -> None:
    s = SlackSettings.from_env({"SLACK_BOT_TOKEN": "xoxb-env"}, bot_token="xoxb-ssm")
    assert s.bot_token == Secret("xoxb-ssm")


def test_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        SlackSettings().api_url = "x"  # type: ignore[misc]
