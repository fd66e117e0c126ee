"""What the Lambda functions share, built once per container: settings, Slack secrets, the bot.

Everything here is built on first use and cached for the container's life (cold start pays
once, warm invocations nothing); :func:`reset` forgets it all so a test can change the
environment and build again. Settings come from the same ``TRAINBOT_*`` variables the CLI
reads, so the functions run against AWS, a local endpoint (``AWS_ENDPOINT_URL``: moto,
LocalStack) or the Slack stand-in (``SLACK_API_URL``) alike.

Slack secrets: when ``SLACK_SIGNING_SECRET_PARAM`` / ``SLACK_BOT_TOKEN_PARAM`` name an SSM
parameter (``/trainbot/prod/slack-bot-token``, read with decryption) or a Secrets Manager
secret (its ARN, ``arn:aws:secretsmanager:…``), the value is read from there
(:mod:`functions.secrets`: the Parameters and Secrets extension, else Powertools);
otherwise ``SLACK_SIGNING_SECRET`` / ``SLACK_BOT_TOKEN`` are read from the environment
(local runs, tests). Values live only in ``Secret`` and are never logged.

The Slack function's ack path goes through here, so this module imports no pydantic, no
domain and no boto3: ``settings()`` and the bot's dependencies are built on first use,
which for the Slack function means in a lazy listener, never in the ack.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from bot.slack.settings import SlackSettings

if TYPE_CHECKING:
    from slack_bolt.adapter.aws_lambda import SlackRequestHandler

    from bot.config import Settings
    from bot.services.context import Deps
    from bot.slack.wiring import SlackBot

__all__ = [
    "ACK_MODULES",
    "BOT_MODULES",
    "SECRET_PARAMS",
    "Worker",
    "charts_available",
    "lambda_client",
    "load_slack_settings",
    "per_container",
    "preload",
    "reset",
    "settings",
    "slack_bot",
    "slack_handler",
    "slack_settings",
    "worker",
]

T = TypeVar("T")

# SlackSettings field → the variable naming where its value is stored.
SECRET_PARAMS = {
    "signing_secret": "SLACK_SIGNING_SECRET_PARAM",
    "bot_token": "SLACK_BOT_TOKEN_PARAM",
}
# What the Slack function's ack imports; what building the bot's dependencies imports.
ACK_MODULES = ("slack_bolt.adapter.aws_lambda", "bot.slack.wiring", "bot.slack.app",
               "functions.secrets")
BOT_MODULES = (*ACK_MODULES, "bot.config", "bot.bootstrap", "bot.slack.interactions",
               "bot.slack.notifier", "bot.adapters.dynamodb.store",
               "bot.adapters.sagemaker.compute", "functions.metering")

_caches: list[Callable[[], None]] = []


def per_container(fn: Callable[..., T]) -> Callable[..., T]:
    """Cache ``fn`` for the container's life, and let :func:`reset` clear it."""
    cached = functools.cache(fn)
    _caches.append(cached.cache_clear)
    return cached


def reset() -> None:
    """Forget everything built so far (tests; never needed in Lambda)."""
    from functions import secrets

    for clear in _caches:
        clear()
    secrets.reset()


@per_container
def settings() -> Settings:
    from bot.config import load_settings

    return load_settings()


@per_container
def slack_settings() -> SlackSettings:
    return load_slack_settings()


def load_slack_settings(*, ssm: Any = None, secrets_manager: Any = None,
                        secrets: Sequence[str] = tuple(SECRET_PARAMS)) -> SlackSettings:
    """Slack settings with each secret from its store when its ``*_PARAM`` is set.

    Only the ``secrets`` named are read (a function that never verifies a request asks for
    the bot token alone: its role can't read the signing secret). ``ConfigError`` names the
    variable (never the value) when a parameter can't be read.
    """
    from bot.aws import LazyClient
    from functions.secrets import read_secret

    # One client per store for all secrets (each client costs ~40 ms on a cold start); only
    # made if the SDK path is taken.
    ssm = ssm or LazyClient("ssm")
    secrets_manager = secrets_manager or LazyClient("secretsmanager")
    overrides: dict[str, Any] = {name: None for name in SECRET_PARAMS if name not in secrets}
    for field in secrets:
        variable = SECRET_PARAMS[field]
        name = os.environ.get(variable, "").strip()
        if name:
            overrides[field] = read_secret(name, variable, ssm=ssm,
                                           secrets_manager=secrets_manager)
    return SlackSettings.from_env(**overrides)


def charts_available() -> bool:
    """Whether this bundle can draw charts. The Lambda bundle leaves matplotlib out (~80 MB);
    a function given a layer with it posts training-curve charts again."""
    return importlib.util.find_spec("matplotlib") is not None


@per_container
def slack_bot(*, with_charts: bool) -> SlackBot:
    """The Slack function's Bolt app, its Deps (DynamoDB, SageMaker, Slack chat; built on
    first use of ``.deps``, metered) and WebClient. The Slack function never draws charts
    (matplotlib stays off the ack path)."""
    from bot.slack.wiring import build_slack_bot

    def metered(deps: Deps) -> Deps:
        from functions.metering import instrument  # the domain models: off the ack path

        return instrument(deps)

    return build_slack_bot(settings, slack_settings(), with_charts=with_charts,
                           process_before_response=True, lazy_deps=True, on_deps=metered)


@dataclass(frozen=True)
class Worker:
    """What the job-events and reconcile functions run on."""

    deps: Deps
    client: Any  # slack_sdk.WebClient


@per_container
def worker(*, with_charts: bool) -> Worker:
    """Metered Deps that tell Slack through a plain Web client: no Bolt app and no signing
    secret (these functions verify no Slack request; their roles can't read it). Charts are
    drawn when :func:`charts_available`."""
    from bot.domain import ConfigError
    from bot.slack.wiring import build_slack_deps, web_client
    from functions.metering import instrument

    slack = load_slack_settings(secrets=("bot_token",))
    if slack.bot_token is None:
        raise ConfigError("SLACK_BOT_TOKEN is not set (Slack app → OAuth & Permissions).")
    client = web_client(slack.bot_token.get_secret_value(), slack.api_url)
    deps = build_slack_deps(settings(), client, with_charts=with_charts)
    return Worker(deps=instrument(deps), client=client)


@per_container
def slack_handler() -> SlackRequestHandler:
    """Bolt's Lambda adapter over :func:`slack_bot`, with correlation ids for the logs."""
    from slack_bolt.adapter.aws_lambda import SlackRequestHandler

    from bot.slack.request_guard import withhold_bodies

    bot = slack_bot(with_charts=False)
    withhold_bodies(bot.app)  # Bolt logs the body of a request that fails verification
    bot.app.middleware(_correlate)
    handler = SlackRequestHandler(bot.app)
    # Made on the first re-invocation — inside that ack (on a cold start ~0.05-0.1 s; the
    # same time as in the init phase, which precedes the first ack anyway) — and never for
    # what the ack answers whole (help, malformed input).
    # Each re-invocation is marked as this function's own (functions.lazy), so a late one is
    # held to its signature but not to Slack's 5-minute window.
    from bot.aws import LazyClient
    from functions.lazy import MarkedLazyListenerRunner

    handler.app.listener_runner.lazy_listener_runner = MarkedLazyListenerRunner(
        handler.logger, lambda_client=LazyClient("lambda", lambda _service: lambda_client()),
        signing_secret=_signing_secret)
    return handler


def _signing_secret() -> str:
    secret = slack_settings().signing_secret
    if secret is None:  # Bolt verified the request with it: unreachable in practice
        raise RuntimeError("no Slack signing secret")
    return secret.get_secret_value()


def _correlate(context: Any, next_: Callable[[], Any]) -> Any:
    from functions.observability import logger

    logger.append_keys(slack_team=context.team_id, slack_channel=context.channel_id,
                       slack_user=context.user_id)
    return next_()


@per_container
def lambda_client() -> Any:
    """The client Bolt's lazy listeners re-invoke this function through.

    A command, button or modal with a lazy half re-invokes (InvocationType=Event) before
    its ack is returned, so the call must fail fast rather than retry for long.
    """
    import boto3
    from botocore.config import Config

    from bot.aws import aws_region

    config = Config(connect_timeout=2, read_timeout=2,
                    retries={"mode": "standard", "max_attempts": 2})
    return boto3.client("lambda", region_name=aws_region(), config=config,
                        endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None)


def preload(*modules: str) -> None:
    """Import ``modules`` during Lambda's init phase, so the first request doesn't.

    Only imports: no secrets, no clients, no network. The Parameters and Secrets extension
    answers only during invocations, and a secret read at init would outlive a rotation just
    the same. A failure is only logged; the first request imports again and reports it.
    """
    import importlib

    from functions.observability import logger

    for module in modules:
        try:
            importlib.import_module(module)
        except Exception:
            logger.exception("preloading %s failed; the first request will try again", module)
