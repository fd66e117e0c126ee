"""The Chat port over Slack's Web API: version cards, threads, announcements, approvals.

Cards are updated in place (``chat.update``); each transition is also a reply in the card's
thread; completion and failure are broadcast to the channel with the requester mentioned.
Progress refreshes are coalesced so a card is edited at most every ``progress_interval_s``
and a channel at most once a second (Slack's ~1 message/s/channel guidance).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from bot.domain import Approval, JobVersion, Status
from bot.ports import Links
from bot.slack.blocks import fallback_text, render_blocks
from bot.views import presenters

__all__ = ["SlackChat"]

log = logging.getLogger("trainbot.slack")


class SlackChat:
    def __init__(
        self,
        client: Any,
        *,
        links: Callable[[JobVersion], Links] | None = None,
        algorithms: dict | None = None,
        progress_interval_s: float = 5.0,
        chart: Callable[[JobVersion], bytes | None] | None = None,
        pools: dict | None = None,
    ) -> None:
        self.client = client
        self.links = links or (lambda v: Links())
        self.algorithms = algorithms or {}
        self.pools = pools or {}
        self.chart = chart
        self.progress_interval_s = progress_interval_s
        self._last_card_edit: dict[str, float] = {}
        self._last_channel_edit: dict[str, float] = {}
        self._lock = threading.Lock()

    # -- version cards ------------------------------------------------------------------

    def _card(self, version: JobVersion) -> tuple[str, list[dict]]:
        doc = presenters.version_card(version, self.links(version),
                                      algorithm=self.algorithms.get(version.spec.algorithm))
        return fallback_text(doc), render_blocks(doc)

    def version_created(self, version: JobVersion) -> tuple[str, str] | None:
        if not version.channel:
            return None
        text, blocks = self._card(version)
        resp = self.client.chat_postMessage(channel=version.channel, text=text, blocks=blocks)
        return resp["channel"], resp["ts"]

    def version_changed(self, version: JobVersion, previous: Status) -> None:
        if not (version.channel and version.message_ts):
            return
        try:
            self._update_card(version)
        except Exception:
            # The card is a convenience; the thread reply and the announcement are how people
            # hear about the change, so a card that can't be edited must not silence them.
            log.exception("could not update the card of %s", version.label)
        self.client.chat_postMessage(
            channel=version.channel, thread_ts=version.message_ts, text=self._transition(version))
        if version.status.terminal:
            self._announce(version)

    def progress(self, version: JobVersion) -> None:
        if not (version.channel and version.message_ts) or version.status.terminal:
            return
        now = time.monotonic()
        with self._lock:
            card_last = self._last_card_edit.get(version.message_ts, 0.0)
            channel_last = self._last_channel_edit.get(version.channel, 0.0)
            if now - card_last < self.progress_interval_s or now - channel_last < 1.0:
                return  # coalesced: the next refresh carries the newest progress
            self._last_card_edit[version.message_ts] = now
            self._last_channel_edit[version.channel] = now
        self._update_card(version)

    def _update_card(self, version: JobVersion) -> None:
        text, blocks = self._card(version)
        self.client.chat_update(channel=version.channel, ts=version.message_ts, text=text,
                                blocks=blocks)

    def _transition(self, v: JobVersion) -> str:
        last = v.history[-1] if v.history else None
        note = f" — {last.message}" if last and last.message else ""
        at = f" at {last.at:%H:%M:%S} UTC" if last else ""
        return f"{v.status.emoji} {v.label} is now *{v.status.value}*{at}{note}"[:3000]

    def _announce(self, v: JobVersion) -> None:
        who = f"<@{v.requested_by}>"
        if v.status is Status.COMPLETED:
            algo = self.algorithms.get(v.spec.algorithm)
            metric = algo.objective.metric if algo else None
            value = v.metrics.get(metric) if metric else None
            headline = f" {metric}={value:.4g}" if value is not None else ""
            tb = self.links(v).tensorboard
            text = f":white_check_mark: {who} *{v.label}* completed.{headline}" + (
                f" <{tb}|TensorBoard>" if tb else "")
        elif v.status is Status.FAILED:
            tail = "\n".join(v.log_tail[-8:])
            text = f":x: {who} *{v.label}* failed: {v.failure_reason or 'unknown reason'}" + (
                f"\n```{tail[-1500:]}```" if tail else "")
        elif v.status is Status.STOPPED:
            text = f":black_square_for_stop: {who} *{v.label}* stopped."
        else:
            text = f":no_entry_sign: {who} *{v.label}* was not run: {v.failure_reason or ''}"
        self.client.chat_postMessage(channel=v.channel, thread_ts=v.message_ts, text=text[:3000],
                                     reply_broadcast=True)
        if v.status is Status.COMPLETED and self.chart is not None:
            self._upload_chart(v)

    def _upload_chart(self, v: JobVersion) -> None:
        try:
            png = self.chart(v) if self.chart else None
        except Exception:
            log.exception("chart for %s failed", v.label)
            return
        if png:
            self.client.files_upload_v2(
                channel=v.channel, thread_ts=v.message_ts, content=png,
                filename=f"{v.job}-v{v.number}-curves.png", title=f"{v.label} training curves",
            )

    def post_confusion_matrix(self, v: JobVersion, *, channel: str | None = None) -> None:
        """A classifier's confusion matrix as a picture, into the card's thread."""
        ev = v.evaluation or {}
        matrix = ev.get("confusion_matrix")
        target = v.channel or channel
        if not matrix or not target:
            return
        try:
            from bot.slack.charts import confusion_matrix_png

            classes = [str(c) for c in ev.get("classes") or range(len(matrix))]
            png = confusion_matrix_png(matrix, classes, f"{v.label} confusion matrix")
        except ImportError:  # the Lambda bundle has no matplotlib: the table must do
            log.info("no matplotlib here: confusion matrix of %s not drawn", v.label)
            return
        self.client.files_upload_v2(
            channel=target, thread_ts=v.message_ts if v.channel == target else None, content=png,
            filename=f"{v.job}-v{v.number}-confusion.png", title=f"{v.label} confusion matrix")

    # -- approvals ------------------------------------------------------------------------

    def approval_requested(self, approval: Approval, version: JobVersion) -> tuple[str, str] | None:
        if not version.channel:
            return None
        pool = self.pools.get(approval.pool)
        cost = version.estimated_cost_usd if pool is not None else None
        doc = presenters.approval_doc(approval, version, estimated_cost=cost)
        resp = self.client.chat_postMessage(channel=version.channel, text=fallback_text(doc),
                                            blocks=render_blocks(doc))
        return resp["channel"], resp["ts"]

    def approval_decided(self, approval: Approval, version: JobVersion) -> None:
        if not (approval.channel and approval.message_ts):
            return
        doc = presenters.approval_doc(approval, version)
        self.client.chat_update(channel=approval.channel, ts=approval.message_ts,
                                text=fallback_text(doc), blocks=render_blocks(doc))
