"""The terminal client reads like Slack: an edit shows what changed, a message shows once.

A real ``slack_sdk.WebClient`` plays the bot against ``LocalSlack``; the REPL (``run_client``)
fetches the workspace after each step, as it does after each command, and the tests read
what it printed.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from slack_sdk import WebClient

from bot.localslack import LocalSlack, run_client

CHANNEL = "C0LOCAL"
TB = "http://127.0.0.1:6006/?runFilter=trainbot-demo-v1#timeseries"
Step = Callable[[], object] | str


@pytest.fixture
def slack() -> Iterator[LocalSlack]:
    with LocalSlack() as server:
        yield server


@pytest.fixture
def web(slack: LocalSlack) -> WebClient:
    return WebClient(token="xoxb-local", base_url=slack.api_url)


def _button(label: str, action_id: str, url: str | None = None) -> dict[str, Any]:
    button = {"type": "button", "action_id": action_id, "value": "demo:1",
              "text": {"type": "plain_text", "text": label}}
    return dict(button, url=url) if url else button


def _card(status: str, *, progress: str | None = None, took: str | None = None,
          metrics: str | None = None) -> list[dict[str, Any]]:
    """Blocks shaped like trainbot's version card."""
    fields = ["*Algorithm*\n`quick-metrics` 1.0.0", "*Pool*\n`local-cpu`",
              "*Requested by*\n<@U0LOCAL1>", f"*Cost*\n{'$0.00 actual' if metrics else '≤ $0.00 est.'}"]
    if took:
        fields.append(f"*Time*\nstarted 07:50:20 UTC, took {took}")
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*demo v1* — {status}\n"
                                     "*Parameters* `epochs=4`  `optimizer=adam`"},
         "fields": [{"type": "mrkdwn", "text": f} for f in fields]}]
    if progress:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": progress}})
    if metrics:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": metrics}})
    done = status == "COMPLETED"
    buttons = [_button("TensorBoard", "open_tensorboard", TB), _button("Lineage", "show_lineage"),
               _button("Logs", "show_logs")]
    buttons += ([_button("Rerun", "rerun_version"), _button("Save as preset", "save_preset")]
                if done else [_button("Stop", "stop_version")])
    blocks.append({"type": "actions", "block_id": "card_actions", "elements": buttons})
    blocks.append({"type": "context", "elements": [
        {"type": "mrkdwn", "text": "training job `trainbot-demo-v1`"}]})
    return blocks


def _watch(slack: LocalSlack, *steps: Step) -> str:
    """What the REPL prints when the bot's calls in ``steps`` happen one at a time; a string
    in ``steps`` is typed as is."""

    class Script(io.StringIO):
        def __init__(self) -> None:
            super().__init__()
            self.todo = list(steps)

        def __next__(self) -> str:
            if not self.todo:
                raise StopIteration
            step = self.todo.pop(0)
            if isinstance(step, str):
                return step + "\n"
            step()
            return "/wait 0\n"  # any command ends with a fetch of the workspace

    output = io.StringIO()
    run_client("http://127.0.0.1:9/slack/events", slack, "secret", input=Script(),
               output=output, poll=False)
    return output.getvalue()


class _Job:
    """The calls trainbot makes for one version: card, progress, thread, completion."""

    def __init__(self, web: WebClient) -> None:
        self.web = web
        self.ts = ""

    def post(self) -> None:
        self.ts = self.web.chat_postMessage(channel=CHANNEL, text="demo v1 QUEUED",
                                            blocks=_card("QUEUED"))["ts"]

    def update(self, status: str, **card: str) -> Callable[[], object]:
        return lambda: self.web.chat_update(channel=CHANNEL, ts=self.ts, text=f"demo v1 {status}",
                                            blocks=_card(status, **card))

    def reply(self, text: str, *, broadcast: bool = False) -> Callable[[], object]:
        return lambda: self.web.chat_postMessage(channel=CHANNEL, thread_ts=self.ts, text=text,
                                                 reply_broadcast=broadcast)


COMPLETION = "<@U0LOCAL1> *demo v1* completed. validation:accuracy=0.75"


def _a_whole_job(job: _Job) -> list[Step]:
    return [
        job.post,
        job.reply("demo v1 is now *TRAINING* at 07:50:20 UTC"),
        job.update("TRAINING", progress="█░░░░░░░░░ 1/4 (25%) loss=0.9", took="1s"),
        job.update("TRAINING", progress="█████░░░░░ 2/4 (50%) loss=0.7", took="2s"),
        job.update("TRAINING", progress="███████░░░ 3/4 (75%) loss=0.6", took="3s"),
        job.update("TRAINING", progress="██████████ 4/4 (100%) loss=0.5", took="4s"),
        job.update("COMPLETED", took="4s", metrics="*Metrics*  *validation:accuracy=0.75*"),
        job.reply("demo v1 is now *COMPLETED* at 07:50:24 UTC"),
        job.reply(COMPLETION, broadcast=True),
        job.reply("[chart] demo-v1-curves.png"),
    ]


def test_a_whole_job_reads_in_a_few_lines_with_the_completion_once(
        slack: LocalSlack, web: WebClient) -> None:
    out = _watch(slack, *_a_whole_job(_Job(web)))
    lines = out.splitlines()[1:]  # after the client's greeting

    assert len(lines) <= 30, out
    assert out.count("── #1 ") == 1  # the card, printed whole once
    assert out.count("✎ #1: ") == 5  # then one edit line per chat.update
    assert out.count("validation:accuracy=0.75 ") == 0
    assert out.count("@you *demo v1* completed.") == 1
    (completion,) = [line for line in lines if line.startswith("── #2 ")]
    assert "also in thread #1" in completion
    assert out.count("is now *TRAINING*") == 1 and out.count("is now *COMPLETED*") == 1
    assert out.count("demo-v1-curves.png") == 1


def test_a_progress_edit_is_one_line_of_what_changed(slack: LocalSlack, web: WebClient) -> None:
    job = _Job(web)
    out = _watch(slack, job.post, job.update("TRAINING", progress="█░░ 1/4 (25%)", took="1s"),
                 job.update("TRAINING", progress="██░ 2/4 (50%)", took="2s"))

    last = out.splitlines()[-2:]
    assert last[0].startswith("✎ #1: ") and "2/4 (50%)" in last[1] + last[0]
    assert "took 2s" in "\n".join(last) and "Algorithm" not in "\n".join(last)


def test_an_edit_shows_new_buttons_with_the_numbers_they_keep(slack: LocalSlack,
                                                              web: WebClient) -> None:
    job = _Job(web)
    out = _watch(slack, job.post, job.update("COMPLETED", took="4s", metrics="*Metrics*  x=1"))

    assert "[1] TensorBoard" in out and "[4] Stop" in out
    (edit,) = [line for line in out.splitlines() if "Rerun" in line]
    assert "[1] TensorBoard" in edit and "[5] Rerun  [6] Save as preset" in edit
    assert out.count("[2] Lineage") == 2  # the card, then its changed buttons line


def test_a_reply_prints_once_and_leaves_its_parent_alone(slack: LocalSlack,
                                                         web: WebClient) -> None:
    job = _Job(web)
    out = _watch(slack, job.post, job.reply("demo v1 is now *TRAINING*"),
                 job.reply("demo v1 is now *COMPLETED*"))

    assert out.count("── #1 ") == 1 and "✎" not in out  # reply counts are not edits
    assert out.count("↳ reply to #1") == 2
    assert out.count("is now *TRAINING*") == 1 and out.count("is now *COMPLETED*") == 1


def test_a_broadcast_reply_prints_once_in_the_channel_marked_as_in_the_thread(
        slack: LocalSlack, web: WebClient) -> None:
    job = _Job(web)
    out = _watch(slack, job.post, job.reply(COMPLETION, broadcast=True))

    assert out.count("completed. validation") == 1
    (header,) = [line for line in out.splitlines() if line.startswith("── #2 ")]
    assert "also in thread #1" in header


def test_the_thread_shows_the_broadcast_among_its_replies(slack: LocalSlack,
                                                          web: WebClient) -> None:
    job = _Job(web)
    out = _watch(slack, job.post, job.reply(COMPLETION, broadcast=True), "/thread 1")

    assert out.count("completed. validation") == 2  # as it arrived, then in /thread 1
    assert "↳ reply to #1, also sent to the channel as #2" in out


def test_an_edit_to_a_message_from_before_the_client_started_shows_what_changed(
        slack: LocalSlack, web: WebClient) -> None:
    job = _Job(web)
    job.post()
    out = _watch(slack, job.update("TRAINING", progress="█░░ 1/4 (25%)"))

    assert out.count("── #1 ") == 1 and out.count("QUEUED") == 1  # the history
    assert "✎ #1: *demo v1* — TRAINING" in out and out.count("Algorithm") == 1


def test_a_deleted_line_is_shown_struck(slack: LocalSlack, web: WebClient) -> None:
    job = _Job(web)
    out = _watch(slack, job.post, job.update("QUEUED", progress="waiting for a GPU"),
                 job.update("QUEUED"))

    assert out.splitlines()[-1] == "✎ #1: − waiting for a GPU"
