"""Build the Slack side: WebClient (with retries), the Chat adapter, Deps and the Bolt App.

Light at import (the Lambda ack path builds the app from here): the Deps, and everything
they import, are built in ``build`` below.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from bot.domain import ConfigError
from bot.slack.settings import SlackSettings

if TYPE_CHECKING:
    from bot.bootstrap import ChatFor
    from bot.config import Settings
    from bot.domain import JobVersion
    from bot.ports import Chat, Compute
    from bot.services.algorithms import AlgorithmOf
    from bot.services.authz import Policy
    from bot.services.context import Deps
    from bot.slack.directory import Directory

__all__ = ["SlackBot", "build_slack_bot", "build_slack_deps", "slack_chat", "web_client"]


class SlackBot:
    """The Bolt app, its WebClient, and the bot's :class:`Deps` — built at once, or on first
    use of :attr:`deps` when the bot was built with ``lazy_deps`` (the Lambda ack path)."""

    def __init__(self, app: Any, client: Any, build: Callable[[], Deps]) -> None:
        self.app = app
        self.client = client
        self._build = build
        self._deps: Deps | None = None
        self._lock = threading.Lock()

    @property
    def deps(self) -> Deps:
        if self._deps is None:
            with self._lock:  # lazy listeners run in threads: build once
                if self._deps is None:
                    self._deps = self._build()
        return self._deps


def web_client(token: str, api_url: str) -> Any:
    """A WebClient that retries 429 (honouring Retry-After), 5xx and connection errors."""
    from slack_sdk import WebClient
    from slack_sdk.http_retry.builtin_handlers import ConnectionErrorRetryHandler

    from bot.slack.deadline import BoundedRateLimitRetryHandler, BoundedServerErrorRetryHandler

    client = WebClient(token=token, base_url=api_url, timeout=15)
    # Bounded by the invocation's deadline on Lambda (bot.slack.deadline).
    client.retry_handlers.extend([
        BoundedRateLimitRetryHandler(max_retry_count=3),
        BoundedServerErrorRetryHandler(max_retry_count=2),
    ])
    if not any(isinstance(h, ConnectionErrorRetryHandler) for h in client.retry_handlers):
        client.retry_handlers.append(ConnectionErrorRetryHandler())
    return client


def slack_chat(client: Any, directory: Directory, *, with_charts: bool) -> ChatFor:
    """How the Deps' Chat is built on Slack: cards link to what the compute serves, the
    objective of a version's algorithm (a preset or the team's own) comes from
    ``algorithm_of`` — read from the store on use —, the approvers (user groups expanded)
    are the policy's."""

    def chat_for(compute: Compute, algorithm_of: AlgorithmOf, policy: Policy) -> Chat:
        from bot.ports import Links
        from bot.slack.notifier import SlackChat

        def links(version: JobVersion) -> Links:
            return compute.links(version) if version.backend_job_name else Links()

        chart = confusion = sweep_chart = spend_chart = None
        if with_charts:
            from bot.slack.charts import (
                chart_for,
                confusion_chart_for,
                cost_chart_for,
                sweep_chart_for,
            )

            chart, confusion, sweep_chart = chart_for, confusion_chart_for, sweep_chart_for
            spend_chart = cost_chart_for
        return SlackChat(
            client, links=links, algorithm_of=algorithm_of,
            approvers=lambda: directory.expand(policy.approvers + policy.admins),
            chart=chart, confusion_chart=confusion, sweep_chart=sweep_chart,
            spend_chart=spend_chart)

    return chat_for


def build_slack_deps(settings: Settings, client: Any, *, with_charts: bool,
                     overrides: Mapping[str, Any] | None = None) -> Deps:
    """The bot's Deps telling Slack through ``client`` (group membership read from Slack;
    files shared in Slack usable as training data)."""
    from bot.adapters.slack_files import SlackFileInbox
    from bot.bootstrap import build_deps, build_file_storage
    from bot.slack.directory import Directory

    directory = Directory(client)
    parts: dict[str, Any] = {"files": SlackFileInbox(client, build_file_storage(settings))}
    parts.update(overrides or {})
    return build_deps(settings, chat_for=slack_chat(client, directory, with_charts=with_charts),
                      is_member=directory.is_member, **parts)


def build_slack_bot(settings: Settings | Callable[[], Settings], slack: SlackSettings, *,
                    deps_overrides: dict[str, Any] | None = None, client: Any = None,
                    process_before_response: bool = True, with_charts: bool = True,
                    lazy_deps: bool = False, on_deps: Callable[[Deps], Deps] | None = None
                    ) -> SlackBot:
    """The Slack bot. ``settings`` may be a function, called when the Deps are built;
    ``on_deps`` may wrap them once built (the Lambda functions meter them)."""
    if slack.signing_secret is None:
        raise ConfigError("SLACK_SIGNING_SECRET is not set (Slack app → Basic Information).")
    if slack.bot_token is None:
        raise ConfigError("SLACK_BOT_TOKEN is not set (Slack app → OAuth & Permissions).")
    from bot.slack.app import build_app

    token = slack.bot_token.get_secret_value()
    client = client or web_client(token, slack.api_url)

    def build() -> Deps:
        deps = build_slack_deps(settings() if callable(settings) else settings, client,
                                with_charts=with_charts, overrides=deps_overrides)
        return on_deps(deps) if on_deps is not None else deps

    bot: SlackBot
    # The ack answers help itself, before the settings exist on a cold Lambda: it reads the
    # channel allow-list as Settings does (TRAINBOT_CHANNELS, comma-separated).
    channels = (settings.channels if not callable(settings) else
                [c.strip() for c in os.environ.get("TRAINBOT_CHANNELS", "").split(",")
                 if c.strip()])
    app = build_app(lambda: bot.deps, signing_secret=slack.signing_secret.get_secret_value(),
                    bot_token=token, client=client,
                    process_before_response=process_before_response, channels=channels)
    bot = SlackBot(app, client, build)
    if not lazy_deps:
        bot.deps  # noqa: B018 — build now: local runs recover their training processes at start
    return bot
