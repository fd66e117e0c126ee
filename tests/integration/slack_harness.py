"""Drive the real Bolt app over HTTP with signed requests, against the local Slack stand-in."""

from __future__ import annotations

import json
import os
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bot.adapters.local.compute import LocalCompute
from bot.adapters.local_data import LocalData
from bot.adapters.tensorboard_local import LocalTensorBoard
from bot.bootstrap import run_data_dirs
from bot.config import Settings
from bot.domain import JobVersion
from bot.localslack.server import LocalSlack
from bot.localslack.signing import (
    block_actions_body,
    sign,
    slash_command_body,
    view_submission_body,
)
from bot.slack.http_server import BoltHTTPServer
from bot.slack.settings import SlackSettings
from bot.slack.wiring import SlackBot, build_slack_bot

SECRET = "test-signing-secret-0123456789"
TOKEN = "xoxb-test-token-secret"
CHANNEL = "C0LOCAL"
REPO = Path(__file__).resolve().parents[2]


def algorithms_dir(tmp: Path, names: list[str]) -> Path:
    """A folder with the named real or fixture algorithms (symlinked)."""
    root = tmp / "algorithms"
    root.mkdir(exist_ok=True)
    for name in names:
        for base in (REPO / "algorithms", REPO / "tests" / "fixtures" / "algorithms"):
            if (base / name).is_dir():
                (root / name).symlink_to(base / name)
                break
        else:
            raise FileNotFoundError(name)
    return root


class Harness:
    """``tensorboard=False``: card links skip the local TensorBoard server (seconds of CPU
    each) — the local compute is built without one."""

    def __init__(self, tmp: Path, *, algorithms: list[str], tensorboard: bool = True,
                 **settings: Any) -> None:
        self.slack = LocalSlack(bot_token=TOKEN).start()
        self.settings = Settings(home=tmp / "home", algorithms_dir=algorithms_dir(tmp, algorithms),
                                 tensorboard_port=0, **settings)
        slack = SlackSettings(signing_secret=SECRET, bot_token=TOKEN,
                              api_url=self.slack.api_url)
        overrides: dict[str, Any] = {}
        self._tensorboard: LocalTensorBoard | None = None
        if self.settings.compute == "local":
            if tensorboard:
                self._tensorboard = LocalTensorBoard(self.settings.runs_dir, port=0,
                                                     state_dir=self.settings.home)
            overrides["compute"] = LocalCompute(
                self.settings.runs_dir, algorithms_root=self.settings.algorithms_dir,
                job_prefix=self.settings.job_prefix, tensorboard=self._tensorboard,
                data=LocalData(run_data_dirs(self.settings)))
        self.bot: SlackBot = build_slack_bot(self.settings, slack, with_charts=True,
                                             deps_overrides=overrides)
        self.server = BoltHTTPServer(self.bot.app, port=0).start()

    def close(self) -> None:
        self.server.stop()
        self.bot.deps.compute.close()
        if self._tensorboard is not None:
            self._tensorboard.stop()
        self.slack.stop()

    # -- sending what Slack sends ----------------------------------------------------------

    def post(self, body: str, *, headers: dict[str, str] | None = None,
             timestamp: int | None = None, secret: str = SECRET) -> tuple[int, str]:
        hdrs = sign(secret, body, timestamp) | (headers or {})
        req = urllib.request.Request(self.server.url, data=body.encode(), headers=hdrs,
                                     method="POST")
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode()

    def command_body(self, text: str, *, user: str = "U0LOCAL1") -> str:
        inter = self.slack.new_interaction(CHANNEL, user)
        return slash_command_body(text, user_id=user, user_name=user, channel_id=CHANNEL,
                                  response_url=inter["response_url"],
                                  trigger_id=inter["trigger_id"])

    def command(self, text: str, *, user: str = "U0LOCAL1") -> tuple[int, str]:
        return self.post(self.command_body(text, user=user))

    def press(self, action_id: str, value: str, *, user: str = "U0LOCAL1",
              message_ts: str = "0") -> tuple[int, str]:
        return self.post(self.press_body(action_id, value, user=user, message_ts=message_ts))

    def press_body(self, action_id: str, value: str, *, user: str = "U0LOCAL1",
                   message_ts: str = "0") -> str:
        inter = self.slack.new_interaction(CHANNEL, user, message_ts)
        return block_actions_body(action_id, value, user_id=user, channel_id=CHANNEL,
                                  message_ts=message_ts, response_url=inter["response_url"],
                                  trigger_id=inter["trigger_id"])

    def submit(self, view: dict, values: dict[str, Any], *, user: str = "U0LOCAL1"
               ) -> tuple[int, dict]:
        status, body = self.post(view_submission_body(view, values, user_id=user))
        return status, (json.loads(body) if body.strip() else {})

    # -- reading what the bot did ------------------------------------------------------------

    def wait(self, predicate: Callable[[], Any], timeout: float = 30.0) -> Any:
        return self.slack.wait_for(predicate, timeout=timeout)

    def ephemeral_texts(self, user: str | None = None) -> list[str]:
        return [json.dumps(e) for e in self.slack.ephemerals(user)]

    def wait_ephemeral(self, needle: str, *, user: str | None = None, timeout: float = 30) -> str:
        return self.wait(lambda: next((e for e in self.ephemeral_texts(user) if needle in e),
                                      None), timeout)

    def cards(self) -> list[dict]:
        return self.slack.messages(CHANNEL)

    def version(self, job: str, number: int = 1) -> JobVersion:
        return self.bot.deps.store.get_version(job, number)

    def wait_status(self, job: str, status: str, number: int = 1, timeout: float = 60) -> JobVersion:
        def done() -> JobVersion | None:
            try:
                v = self.version(job, number)
            except Exception:
                return None
            return v if v.status.value == status else None

        return self.wait(done, timeout)


def slow_ok() -> bool:
    return os.environ.get("CI") is None or True


def wait_until(predicate: Callable[[], Any], timeout: float = 30.0) -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise TimeoutError
