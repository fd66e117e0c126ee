"""The terminal client a person uses with ``make run``: Slack in a line-oriented REPL.

It plays the Slack client and Slack's delivery side at once: what you type becomes a signed
slash command, button click (``block_actions``) or modal submission (``view_submission``)
posted to the bot's HTTP endpoint, and a background thread long-polls the local Slack
stand-in (:mod:`bot.localslack.server`) and prints the channel as it changes
(:mod:`bot.localslack.screen`: new messages whole, edits as the lines that changed). No
curses: it works piped, in scripts and under tmux.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from bot.localslack.files import INTERNAL
from bot.localslack.modal_values import build_view_values
from bot.localslack.screen import Screen, Seat, slack_message
from bot.localslack.signing import (
    block_actions_body,
    sign,
    slash_command_body,
    view_submission_body,
)

if TYPE_CHECKING:
    from bot.localslack.server import LocalSlack

__all__ = ["run_client"]

HELP = """\
commands:
  /train TEXT          send the slash command (e.g. /train start tabular-classification)
  /press N             click button [N]
  /thread N            show message #N with its thread
  /submit KEY=VALUE …  submit the open modal (KEY: an input's block_id or action_id;
                       a file input takes KEY=@PATH, uploaded as you, or a file id)
  /upload PATH [#CH]   share a local file in this channel (or #CH) as you
  /cancel              close the open modal
  /as USER_ID          act as another user (e.g. an approver); /as alone: who am I
  /users               list users and user groups
  /channel [ID]        show or switch the channel
  /wait SECONDS        print what arrives for a while (handy in scripts)
  /help                this text
  /quit                leave"""


# ------------------------------------------------------------------------- HTTP
def _http(url: str, body: bytes | None = None, headers: dict[str, str] | None = None,
          timeout: float = 15) -> tuple[int, str]:
    """POST (or GET without a body) and return the status and body text, errors included."""
    request = urllib.request.Request(url, data=body, headers=headers or {},
                                     method="POST" if body is not None else "GET")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def _post_json(url: str, payload: dict[str, Any]) -> tuple[int, str]:
    return _http(url, json.dumps(payload).encode(), {"Content-Type": "application/json"})


def _json_or_none(text: str) -> dict[str, Any] | None:
    try:
        parsed = json.loads(text)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None



# ---------------------------------------------------------------------- session
class _Session:
    """One person at the terminal: who they are, what they type, and the screen."""

    def __init__(self, bot_url: str, base_url: str, secret: str, *, user_id: str,
                 user_name: str, channel_id: str, commands: tuple[str, ...],
                 output: IO[str]) -> None:
        self.bot_url, self.base_url, self.secret = bot_url, base_url.rstrip("/"), secret
        self.seat = Seat(user_id, channel_id)
        self.user_name = user_name
        self.commands = commands
        self.screen = Screen(output, self.seat)
        self.stopped = threading.Event()

    def emit(self, text: str) -> None:
        self.screen.emit(text)

    def refresh(self, wait: float = 0.0) -> None:
        """Fetch the workspace (long-polling up to ``wait`` s) and print what changed."""
        status, text = _http(
            f"{self.base_url}/_local/state?since={self.screen.version}&wait={wait}",
            timeout=wait + 10)
        if status != 200:
            raise ConnectionError(f"local Slack answered {status}")
        self.screen.take(json.loads(text))

    # -- talking to the bot
    def interaction(self, message_ts: str | None = None,
                    thread_ts: str | None = None) -> dict[str, str]:
        status, text = _post_json(f"{self.base_url}/_local/interaction", {
            "channel": self.seat.channel_id, "user": self.seat.user_id,
            "message_ts": message_ts, "thread_ts": thread_ts})
        if status != 200:
            raise ConnectionError(f"local Slack answered {status}: {text}")
        return json.loads(text)

    def send(self, body: str) -> tuple[int, str]:
        status, text = _http(self.bot_url, body.encode(), sign(self.secret, body))
        if status != 200:
            self.emit(f"(bot answered HTTP {status}: {text.strip()[:300]})")
        return status, text

    def slash(self, command: str, text: str) -> None:
        ids = self.interaction()
        body = slash_command_body(text, user_id=self.seat.user_id, user_name=self.user_name,
                                  channel_id=self.seat.channel_id, command=command,
                                  channel_name=self.screen.channel_name(), **ids)
        status, ack = self.send(body)
        if status == 200 and ack.strip():
            # Slack shows a command's ack body as a message, ephemeral unless it says otherwise.
            response = _json_or_none(ack) or {"text": ack}
            _post_json(f"{ids['response_url']}?ack=1", response)

    def press(self, number: int) -> None:
        button = self.screen.buttons.get(number)
        if button is None:
            self.emit(f"(no button [{number}] on screen)")
            return
        if button.url:
            self.emit(f"(link) {button.url}")
            return
        view = next((v for v in self.screen.my_views() if v["id"] == button.view_id), None)
        message = None if button.ephemeral else self.screen.find_message(button.channel,
                                                                         button.message_ts)
        thread_ts = (message or {}).get("thread_ts")
        ids = self.interaction(button.message_ts, thread_ts)
        body = block_actions_body(
            button.action_id, button.value, user_id=self.seat.user_id,
            user_name=self.user_name, channel_id=button.channel or self.seat.channel_id,
            message_ts=button.message_ts or "",
            message=slack_message(message) if message else None, block_id=button.block_id,
            text=button.label, is_ephemeral=button.ephemeral,
            channel_name=self.screen.channel_name(),
            view=_view_payload(view) if view else None, **ids)
        self.send(body)

    def submit(self, args: list[str]) -> None:
        views = self.screen.my_views()
        if not views:
            self.emit("(no modal is open)")
            return
        view = views[-1]
        try:
            assignments = dict(_assignment(a) for a in args)
            values = build_view_values(view, assignments, files=self._submitted_file)
        except ValueError as exc:
            self.emit(f"(cannot submit: {exc})")
            return
        ids = self.interaction()
        body = view_submission_body(_view_payload(view), values, user_id=self.seat.user_id,
                                    user_name=self.user_name, trigger_id=ids["trigger_id"])
        status, ack = self.send(body)
        if status != 200:
            return
        response = _json_or_none(ack) if ack.strip() else None
        for key, error in ((response or {}).get("errors") or {}).items():
            self.emit(f"  ✗ {key}: {error}")
        _post_json(f"{self.base_url}/_local/view_response",
                   {"view_id": view["id"], "response": response})

    # -- files
    def upload(self, rest: str) -> None:
        """``/upload PATH [#CHANNEL]``: share a local file as this user, as Slack's composer
        does; it says the file's id and link, which ``--data`` takes."""
        args = shlex.split(rest)
        if len(args) not in (1, 2):
            self.emit("(usage: /upload PATH [#channel])")
            return
        channel = self._channel_named(args[1]) if len(args) == 2 else self.seat.channel_id
        file = self._user_file(args[0], channel=channel)
        self.emit(f"(shared {file['name']} in {channel} as {file['id']}; use it with "
                  f"--data train={file['id']} or its link {file['permalink']})")

    def _channel_named(self, name: str) -> str:
        wanted = name.lstrip("#")
        for cid, info in (self.screen.state or {}).get("channels", {}).items():
            if wanted in (cid, info.get("name")):
                return str(cid)
        raise ValueError(f"no channel {name}; /channel lists them")

    def _user_file(self, path: str, *, channel: str | None) -> dict[str, Any]:
        """Upload ``path`` as this user: shared in ``channel``, or nowhere (a file input)."""
        local = Path(path).expanduser()
        try:
            data = local.read_bytes()
        except OSError as exc:
            raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from None
        query = {"user": self.seat.user_id, "filename": local.name}
        if channel:
            query["channel"] = channel
        status, text = _http(f"{self.base_url}/_local/user_file?"
                             f"{urllib.parse.urlencode(query)}", data,
                             {"Content-Type": "application/octet-stream"})
        answer = _json_or_none(text) or {}
        if status != 200 or not answer.get("ok"):
            raise ValueError(f"local Slack refused the upload: {answer.get('error', text)}")
        return dict(answer["file"])

    def _submitted_file(self, name: str) -> dict[str, Any]:
        """A file input's file: ``@PATH`` is uploaded now; an id names one Slack has."""
        if name.startswith("@"):
            return self._user_file(name[1:], channel=None)
        for file in (self.screen.state or {}).get("files", []):
            if file.get("id") == name and not file.get("deleted"):
                return {k: v for k, v in file.items() if k not in INTERNAL}
        raise ValueError(f"{name}: name a file as @PATH (or the id of a file Slack has)")

    def cancel(self) -> None:
        views = self.screen.my_views()
        if not views:
            self.emit("(no modal is open)")
            return
        _post_json(f"{self.base_url}/_local/view_response",
                   {"view_id": views[-1]["id"], "response": {"response_action": "clear"}})

    # -- identity and places
    def act_as(self, user_id: str) -> None:
        users = self.screen.users
        if user_id:
            with self.screen.lock:  # the poller reads the seat while it prints
                self.seat.user_id = user_id
                self.seat.identities.add(user_id)
            self.user_name = users.get(user_id, user_id)
            if user_id not in users:
                self.emit(f"(note: {user_id} is not a user of this workspace; see /users)")
        self.emit(f"you are {self.seat.user_id} ({self.user_name})")

    def list_users(self) -> None:
        for uid, name in self.screen.users.items():
            self.emit(f"  {uid}  {name}{'  ← you' if uid == self.seat.user_id else ''}")
        for group in (self.screen.state or {}).get("usergroups", []):
            members = ", ".join(group.get("users", []))
            self.emit(f"  {group['id']}  @{group['handle']}: {members}")

    def switch_channel(self, channel_id: str) -> None:
        channels = (self.screen.state or {}).get("channels", {})
        if channel_id:
            with self.screen.lock:
                self.seat.channel_id = channel_id
                self.screen.show_history()
        for cid, info in channels.items():
            marker = "  ← here" if cid == self.seat.channel_id else ""
            self.emit(f"  {cid}  #{info.get('name')}  ({len(info.get('messages', []))} "
                      f"messages){marker}")

    def wait(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            self.refresh(wait=min(left, 1.0))

    # -- the loop
    def poll_forever(self) -> None:
        """Background: long-poll the stand-in and print changes as they happen."""
        while not self.stopped.is_set():
            try:
                self.refresh(wait=2.0)
            except (OSError, ValueError, ConnectionError):
                self.stopped.wait(1.0)

    def handle(self, line: str) -> bool:
        """Run one typed line; False means quit."""
        line = line.strip()
        if not line:
            return True
        word, _, rest = line.partition(" ")
        rest = rest.strip()
        if word in ("/quit", "/exit"):
            return False
        if word in self.commands:
            self.slash(word, rest)
        elif word in _COMMANDS:
            _COMMANDS[word](self, rest)
        else:
            self.emit(f"(unknown command {word!r}; /help lists them)")
            return True
        self.refresh()
        return True


def _view_payload(view: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in view.items() if k not in ("user", "errors")}


def _assignment(arg: str) -> tuple[str, str]:
    key, sep, value = arg.partition("=")
    if not sep or not key:
        raise ValueError(f"expected KEY=VALUE, got {arg!r}")
    return key, value


def _int_arg(session: _Session, rest: str, then: Any) -> None:
    if not rest.isdigit():
        session.emit("(expected a number)")
        return
    then(int(rest))


_COMMANDS: dict[str, Any] = {
    "/press": lambda s, rest: _int_arg(s, rest, s.press),
    "/thread": lambda s, rest: _int_arg(s, rest, s.screen.show_thread),
    "/submit": lambda s, rest: s.submit(shlex.split(rest)),
    "/cancel": lambda s, rest: s.cancel(),
    "/upload": lambda s, rest: s.upload(rest),
    "/as": lambda s, rest: s.act_as(rest),
    "/users": lambda s, rest: s.list_users(),
    "/channel": lambda s, rest: s.switch_channel(rest),
    "/wait": lambda s, rest: s.wait(float(rest or 1)),
    "/help": lambda s, rest: s.emit(HELP),
}


def _connect(session: _Session, timeout: float = 10.0) -> bool:
    """First state fetch, retried while the stand-in starts (``make run`` starts all at once)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            session.refresh()
            return True
        except (OSError, ValueError) as exc:
            if time.monotonic() > deadline:
                session.emit(f"(cannot reach local Slack at {session.base_url}: {exc})")
                return False
            time.sleep(0.2)


def run_client(
    bot_url: str,
    slack: LocalSlack | str,
    signing_secret: str,
    *,
    user_id: str = "U0LOCAL1",
    user_name: str = "you",
    channel_id: str = "C0LOCAL",
    input: IO[str] = sys.stdin,
    output: IO[str] = sys.stdout,
    commands: tuple[str, ...] = ("/train",),
    poll: bool = True,
) -> None:
    """Run the REPL until ``/quit`` or end of input.

    ``bot_url`` is the bot's Slack endpoint (e.g. ``http://127.0.0.1:3000/slack/events``);
    ``slack`` is the stand-in or its base URL (``http://127.0.0.1:PORT``; an ``…/api/`` URL is
    accepted too). ``poll=False`` skips the background printer: output then changes only
    after each command (deterministic, for tests).
    """
    base = slack if isinstance(slack, str) else slack.url
    base = base.rstrip("/").removesuffix("/api")
    session = _Session(bot_url, base, signing_secret, user_id=user_id, user_name=user_name,
                       channel_id=channel_id, commands=commands, output=output)
    session.emit(f"local Slack: you are {user_id} ({user_name}) in {channel_id}; /help")
    if not _connect(session):
        return
    poller = threading.Thread(target=session.poll_forever, name="localslack-client",
                              daemon=True)
    if poll:
        poller.start()
    try:
        for line in input:
            try:
                if not session.handle(line):
                    break
            except (OSError, ConnectionError) as exc:
                session.emit(f"(cannot reach local Slack or the bot: {exc})")
            except ValueError as exc:
                session.emit(f"(cannot do that: {exc})")
        with contextlib.suppress(OSError, ValueError):
            session.refresh()  # what arrived while the last command ran
    except KeyboardInterrupt:
        pass
    finally:
        session.stopped.set()


def main(argv: list[str] | None = None) -> None:
    """``python -m bot.localslack.client --bot-url … --slack-url …``."""
    parser = argparse.ArgumentParser(description="Talk to a local trainbot as a Slack user.")
    parser.add_argument("--bot-url", default="http://127.0.0.1:3000/slack/events")
    parser.add_argument("--slack-url", default="http://127.0.0.1:3001")
    parser.add_argument("--signing-secret", default=os.environ.get("SLACK_SIGNING_SECRET", ""))
    parser.add_argument("--user", default="U0LOCAL1")
    parser.add_argument("--name", default=None, help="user name (default: the user's own)")
    parser.add_argument("--channel", default="C0LOCAL")
    args = parser.parse_args(argv)
    if not args.signing_secret:
        parser.error("set SLACK_SIGNING_SECRET or pass --signing-secret")
    from bot.localslack.workspace import DEFAULT_USERS

    name = args.name or DEFAULT_USERS.get(args.user, args.user)
    run_client(args.bot_url, args.slack_url, args.signing_secret, user_id=args.user,
               channel_id=args.channel, user_name=name)


if __name__ == "__main__":
    main()
