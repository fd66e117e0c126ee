"""Reading one secret — an SSM parameter name or a Secrets Manager ARN — for the functions.

Through the AWS Parameters and Secrets Lambda Extension when the function has it (the
deployment adds the layer and sets ``PARAMETERS_SECRETS_EXTENSION_HTTP_PORT``): a GET on
localhost, no AWS SDK client to build, which keeps ~0.1 s of botocore set-up off the Slack
function's cold start. Otherwise — or when the extension fails in any way (not running, not
ready, an error status, a timeout; it is then not asked again in this container) — through
Powertools Parameters and boto3, whose errors are the ones reported. Same IAM either way
(``ssm:GetParameter``, ``kms:Decrypt``).
https://docs.aws.amazon.com/systems-manager/latest/userguide/ps-integration-lambda-extensions.html

Error messages name the variable and the parameter, never a value.
"""

from __future__ import annotations

import json
import logging
import os
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from bot.domain import ConfigError

__all__ = ["EXTENSION_PORT_VARIABLE", "read_secret", "reset"]

log = logging.getLogger("trainbot.secrets")

EXTENSION_PORT_VARIABLE = "PARAMETERS_SECRETS_EXTENSION_HTTP_PORT"
# The extension only answers during invocations (not Lambda's init phase) and fetches from
# SSM on a cache miss (tens of ms); past this, fall back to the SDK rather than miss
# Slack's 3 s.
_EXTENSION_TIMEOUT_S = 1.0
# Parameters are read once per container; rotating a secret means a new container (deploy,
# or wait for Lambda to recycle), which is how Slack rotation is usually rolled out anyway.
_SDK_MAX_AGE_S = 24 * 3600
# No proxy for localhost, whatever the environment says.
_LOOPBACK = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class _ExtensionFailed(Exception):
    """The extension gave no value: not running, not ready, an error status, a timeout."""


# Set once the extension has failed: a second wait for it could cost Slack's 3 s.
_extension_down = False


def reset() -> None:
    """Ask the extension again (tests; a Lambda container never needs it)."""
    global _extension_down
    _extension_down = False


def _is_secrets_manager(name: str) -> bool:
    return name.startswith("arn:aws:secretsmanager:")


def read_secret(name: str, variable: str, *, ssm: Any = None, secrets_manager: Any = None
                ) -> str:
    """The value of ``name``; ``variable`` is the environment variable that named it.

    ``ssm`` / ``secrets_manager`` are boto3 clients for the SDK path (made on demand when
    not given). Raises :class:`ConfigError` when the secret can't be read or is empty.
    """
    global _extension_down
    port = os.environ.get(EXTENSION_PORT_VARIABLE, "").strip()
    value: str | None = None
    if port and not _extension_down:
        try:
            value = _from_extension(name, port)
        except _ExtensionFailed as exc:
            _extension_down = True
            log.warning("the Parameters and Secrets extension failed (%s); reading %s and "
                        "what follows through the AWS SDK", exc, variable)
    if value is None:
        value = _from_sdk(name, variable, ssm=ssm, secrets_manager=secrets_manager)
    if not value:
        raise ConfigError(f"{variable}: {name!r} is empty or not text.")
    return value


def _from_extension(name: str, port: str) -> str | None:
    quoted = urllib.parse.quote(name, safe="")
    if _is_secrets_manager(name):
        path = f"/secretsmanager/get?secretId={quoted}"
    else:
        path = f"/systemsmanager/parameters/get?name={quoted}&withDecryption=true"
    request = urllib.request.Request(
        f"http://localhost:{port}{path}",
        # Proves the caller runs inside this Lambda environment.
        headers={"X-Aws-Parameters-Secrets-Token": os.environ.get("AWS_SESSION_TOKEN", "")})
    try:
        with _LOOPBACK.open(request, timeout=_EXTENSION_TIMEOUT_S) as response:
            payload = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        # The extension's error bodies carry AWS's error code and message, never a value.
        detail = exc.read(300).decode("utf-8", "replace").strip()
        raise _ExtensionFailed(f"HTTP {exc.code} {detail}") from exc
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        raise _ExtensionFailed(str(getattr(exc, "reason", exc))) from exc
    except ValueError as exc:
        raise _ExtensionFailed("an answer that isn't JSON") from exc
    try:
        if _is_secrets_manager(name):
            return payload["SecretString"]
        return payload["Parameter"]["Value"]
    except (KeyError, TypeError):
        return None  # e.g. a binary secret: the SDK path says what is wrong


def _from_sdk(name: str, variable: str, *, ssm: Any, secrets_manager: Any) -> str | None:
    from aws_lambda_powertools.utilities import parameters
    from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError

    from bot.aws import LazyClient

    try:
        if _is_secrets_manager(name):
            provider: Any = parameters.SecretsProvider(
                boto3_client=secrets_manager or LazyClient("secretsmanager"))
            value = provider.get(name, max_age=_SDK_MAX_AGE_S)
        else:
            provider = parameters.SSMProvider(boto3_client=ssm or LazyClient("ssm"))
            value = provider.get(name, decrypt=True, max_age=_SDK_MAX_AGE_S)
    except GetParameterError as exc:
        # The message is botocore's (error code and parameter name): it never holds a value.
        raise ConfigError(f"{variable}: cannot read {name!r}: {exc}") from exc
    return value if isinstance(value, str) else None
