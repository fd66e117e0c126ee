"""What the Lambda functions share, built once per container: settings, Slack secrets, the bot.

Everything here is built on first use and cached for the container's life (cold start pays
once, warm invocations nothing); :func:`reset` forgets it all so a test can change the
environment and build again. Settings come from the same ``TRAINBOT_*`` variables the CLI
reads, so the functions run against AWS, a local endpoint (``AWS_ENDPOINT_URL``: moto,
LocalStack) or the Slack stand-in (``SLACK_API_URL``) alike.

Slack secrets: when ``SLACK_SIGNING_SECRET_PARAM`` / ``SLACK_BOT_TOKEN_PARAM`` name an SSM
parameter (``/trainbot/prod/slack-bot-token``, read with decryption) or a Secrets Manager
secret (its ARN, ``arn:aws:secretsmanager:…``), the value is read from there through
Powertools Parameters; otherwise ``SLACK_SIGNING_SECRET`` / ``SLACK_BOT_TOKEN`` are read
from the environment (local runs, tests). Values live only in ``SecretStr`` and are never
logged.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import SecretStr

from bot.config import Settings, SlackSettings, load_settings
from bot.domain import ConfigError

if TYPE_CHECKING:
    from slack_bolt.adapter.aws_lambda import SlackRequestHandler

    from bot.slack.wiring import SlackBot

__all__ = [
    "SECRET_PARAMS",
    "charts_available",
    "load_slack_settings",
    "per_container",
    "reset",
    "settings",
    "slack_bot",
    "slack_handler",
    "slack_settings",
    "warm",
]

T = TypeVar("T")

# SlackSettings field → the variable naming where its value is stored.
SECRET_PARAMS = {
    "signing_secret": "SLACK_SIGNING_SECRET_PARAM",
    "bot_token": "SLACK_BOT_TOKEN_PARAM",
}
# Parameters are read once per container; rotating a secret means a new container (deploy,
# or wait for Lambda to recycle), which is how Slack rotation is usually rolled out anyway.
_SECRET_MAX_AGE_S = 24 * 3600

_caches: list[Callable[[], None]] = []


def per_container(fn: Callable[..., T]) -> Callable[..., T]:
    """Cache ``fn`` for the container's life, and let :func:`reset` clear it."""
    cached = functools.cache(fn)
    _caches.append(cached.cache_clear)
    return cached


def reset() -> None:
    """Forget everything built so far (tests; never needed in Lambda)."""
    for clear in _caches:
        clear()


@per_container
def settings() -> Settings:
    return load_settings()


@per_container
def slack_settings() -> SlackSettings:
    return load_slack_settings()


def load_slack_settings(*, ssm: Any = None, secrets_manager: Any = None) -> SlackSettings:
    """Slack settings with each secret from its store when its ``*_PARAM`` is set.

    ``ConfigError`` names the variable (never the value) when a parameter can't be read.
    """
    from bot.bootstrap import LazyClient

    # One client per store for all secrets (each client costs ~40 ms on a cold start).
    ssm = ssm or LazyClient("ssm")
    secrets_manager = secrets_manager or LazyClient("secretsmanager")
    overrides: dict[str, SecretStr] = {}
    for field, variable in SECRET_PARAMS.items():
        name = os.environ.get(variable, "").strip()
        if name:
            overrides[field] = SecretStr(
                _read_secret(name, variable, ssm=ssm, secrets_manager=secrets_manager))
    return SlackSettings(**overrides)  # type: ignore[arg-type]


def _read_secret(name: str, variable: str, *, ssm: Any, secrets_manager: Any) -> str:
    from aws_lambda_powertools.utilities import parameters
    from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError

    try:
        if name.startswith("arn:aws:secretsmanager:"):
            provider: Any = parameters.SecretsProvider(boto3_client=secrets_manager)
            value = provider.get(name, max_age=_SECRET_MAX_AGE_S)
        else:
            provider = parameters.SSMProvider(boto3_client=ssm)
            value = provider.get(name, decrypt=True, max_age=_SECRET_MAX_AGE_S)
    except GetParameterError as exc:
        # The message is botocore's (error code and parameter name): it never holds a value.
        raise ConfigError(f"{variable}: cannot read {name!r}: {exc}") from exc
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{variable}: {name!r} is empty or not text.")
    return value


def charts_available() -> bool:
    """Whether this bundle can draw charts. The Lambda bundle leaves matplotlib out (~80 MB);
    a function given a layer with it posts training-curve charts again."""
    return importlib.util.find_spec("matplotlib") is not None


@per_container
def slack_bot(*, with_charts: bool) -> SlackBot:
    """The Bolt app, its Deps (DynamoDB, SageMaker, Slack chat) and WebClient, metered.

    One per ``with_charts`` value: the Slack function never draws charts (matplotlib stays
    off the ack path), the others do when :func:`charts_available`.
    """
    from bot.slack.wiring import build_slack_bot
    from functions.observability import instrument

    bot = build_slack_bot(settings(), slack_settings(), with_charts=with_charts,
                          process_before_response=True)
    instrument(bot.deps)
    return bot


@per_container
def slack_handler() -> SlackRequestHandler:
    """Bolt's Lambda adapter over :func:`slack_bot`, with correlation ids for the logs."""
    from slack_bolt.adapter.aws_lambda import SlackRequestHandler

    bot = slack_bot(with_charts=False)
    bot.app.middleware(_correlate)
    handler = SlackRequestHandler(bot.app)
    # The lazy listener re-invokes this function (InvocationType=Event) while Slack waits
    # for the ack, so the call must fail fast rather than retry for long.
    handler.app.listener_runner.lazy_listener_runner.lambda_client = _lambda_client()
    return handler


def _correlate(context: Any, next_: Callable[[], Any]) -> Any:
    from functions.observability import logger

    logger.append_keys(slack_team=context.team_id, slack_channel=context.channel_id,
                       slack_user=context.user_id)
    return next_()


def _lambda_client() -> Any:
    import boto3
    from botocore.config import Config

    from bot.bootstrap import aws_region

    config = Config(connect_timeout=2, read_timeout=2,
                    retries={"mode": "standard", "max_attempts": 2})
    return boto3.client("lambda", region_name=aws_region(), config=config,
                        endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None)


def warm(build: Callable[[], Any]) -> None:
    """Build during Lambda's init phase, so the first request — perhaps a Slack command with
    its 3 s budget — doesn't pay for it. A failure is only logged: the first request builds
    again and reports it."""
    from functions.observability import logger

    try:
        build()
    except Exception:
        logger.exception("warm-up failed; the first request will try again")
