"""Build the Slack side: WebClient (with retries), the Chat adapter, Deps and the Bolt App."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bot.bootstrap import build_deps, stuck_after
from bot.config import Settings, SlackSettings
from bot.domain import ConfigError
from bot.services.context import Deps
from bot.services.queries import links

__all__ = ["SlackBot", "build_slack_bot", "web_client"]


@dataclass
class SlackBot:
    app: Any
    deps: Deps
    client: Any


def web_client(token: str, api_url: str) -> Any:
    """A WebClient that retries 429 (honouring Retry-After), 5xx and connection errors."""
    from slack_sdk import WebClient
    from slack_sdk.http_retry.builtin_handlers import (
        ConnectionErrorRetryHandler,
        RateLimitErrorRetryHandler,
        ServerErrorRetryHandler,
    )

    client = WebClient(token=token, base_url=api_url, timeout=15)
    client.retry_handlers.extend([
        RateLimitErrorRetryHandler(max_retry_count=3),
        ServerErrorRetryHandler(max_retry_count=2),
    ])
    if not any(isinstance(h, ConnectionErrorRetryHandler) for h in client.retry_handlers):
        client.retry_handlers.append(ConnectionErrorRetryHandler())
    return client


def build_slack_bot(settings: Settings, slack: SlackSettings, *, deps_overrides: dict | None = None,
                    client: Any = None, process_before_response: bool = True,
                    with_charts: bool = True) -> SlackBot:
    if slack.signing_secret is None:
        raise ConfigError("SLACK_SIGNING_SECRET is not set (Slack app → Basic Information).")
    if slack.bot_token is None:
        raise ConfigError("SLACK_BOT_TOKEN is not set (Slack app → OAuth & Permissions).")
    from bot.slack.app import build_app
    from bot.slack.directory import Directory
    from bot.slack.notifier import SlackChat

    token = slack.bot_token.get_secret_value()
    client = client or web_client(token, slack.api_url)
    chat = SlackChat(client)
    directory = Directory(client)
    deps = build_deps(settings, chat=chat, is_member=directory.is_member,
                      **(deps_overrides or {}))
    chat.links = lambda v: links(deps, v)
    chat.algorithms = deps.catalog.algorithms
    chat.pools = deps.catalog.pools
    if with_charts:
        from bot.slack.charts import chart_for

        chat.chart = chart_for
    app = build_app(deps, signing_secret=slack.signing_secret.get_secret_value(),
                    bot_token=token, client=client, stuck_after=stuck_after(settings),
                    process_before_response=process_before_response)
    return SlackBot(app=app, deps=deps, client=client)
