"""Reading Slack's secrets: through the Parameters and Secrets extension (its loopback
stand-in in front of moto), or through the AWS SDK when there is no extension."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator

import pytest
from moto import mock_aws

from bot.aws import aws_client
from bot.domain import ConfigError
from functions import secrets
from functions.local_extension import LocalSecretsExtension
from functions.secrets import EXTENSION_PORT_VARIABLE, read_secret

PARAM = "/trainbot/test/slack-bot-token"
VALUE = "xoxb-secret-from-ssm-31337"
SECRET_VALUE = "signing-secret-from-secrets-manager-4242"


@pytest.fixture(autouse=True)
def _fresh_container() -> Iterator[None]:
    secrets.reset()  # "the extension failed" is remembered per container
    yield
    secrets.reset()


@pytest.fixture
def aws() -> Iterator[str]:
    """moto with one SecureString parameter and one secret; yields the secret's ARN."""
    with mock_aws():
        aws_client("ssm").put_parameter(Name=PARAM, Value=VALUE, Type="SecureString")
        arn = aws_client("secretsmanager").create_secret(
            Name="trainbot/test/signing", SecretString=SECRET_VALUE)["ARN"]
        yield arn


@pytest.fixture
def extension(aws: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalSecretsExtension]:
    with LocalSecretsExtension(token="testing") as ext:
        monkeypatch.setenv(EXTENSION_PORT_VARIABLE, str(ext.port))
        monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
        yield ext


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_ssm_parameter_is_read_through_the_extension(
        extension: LocalSecretsExtension) -> None:
    assert read_secret(PARAM, "SLACK_BOT_TOKEN_PARAM") == VALUE
    assert extension.requests == ["/systemsmanager/parameters/get"]


def test_a_secrets_manager_arn_is_read_through_the_extension(
        extension: LocalSecretsExtension, aws: str) -> None:
    assert read_secret(aws, "SLACK_SIGNING_SECRET_PARAM") == SECRET_VALUE
    assert extension.requests == ["/secretsmanager/get"]


def test_the_extension_caches_between_reads(extension: LocalSecretsExtension) -> None:
    for _ in range(3):
        assert read_secret(PARAM, "SLACK_BOT_TOKEN_PARAM") == VALUE
    assert len(extension.requests) == 3 and extension.backend_calls == 1


def test_a_missing_parameter_names_the_variable_never_a_value(
        extension: LocalSecretsExtension) -> None:
    with pytest.raises(ConfigError) as err:
        read_secret("/trainbot/test/nope", "SLACK_BOT_TOKEN_PARAM")
    message = str(err.value)
    assert "SLACK_BOT_TOKEN_PARAM" in message and "/trainbot/test/nope" in message
    assert "ParameterNotFound" in message and VALUE not in message


def test_an_extension_error_falls_back_to_the_sdk_and_is_not_asked_again(
        extension: LocalSecretsExtension, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """Any failure (here a refused token; in Lambda also "not ready" or a timeout) costs
    one try: the container reads the rest through the SDK."""
    monkeypatch.setenv("AWS_SESSION_TOKEN", "another-environment")
    with caplog.at_level(logging.WARNING, logger="trainbot.secrets"):
        assert read_secret(PARAM, "SLACK_BOT_TOKEN_PARAM") == VALUE
        assert read_secret(PARAM, "SLACK_SIGNING_SECRET_PARAM") == VALUE
    assert len(extension.requests) == 1 and extension.backend_calls == 0
    assert "HTTP 401" in caplog.text and VALUE not in caplog.text


def test_without_an_answering_extension_the_sdk_reads_it(
        aws: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv(EXTENSION_PORT_VARIABLE, str(_closed_port()))  # layer missing
    with caplog.at_level(logging.WARNING, logger="trainbot.secrets"):
        assert read_secret(PARAM, "SLACK_BOT_TOKEN_PARAM") == VALUE
    assert "extension failed" in caplog.text and VALUE not in caplog.text


def test_no_port_variable_means_the_sdk(aws: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(EXTENSION_PORT_VARIABLE, raising=False)
    with LocalSecretsExtension(token="testing") as ext:
        assert read_secret(aws, "SLACK_SIGNING_SECRET_PARAM") == SECRET_VALUE
        assert ext.requests == []
