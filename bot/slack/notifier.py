"""The Chat port over Slack's Web API: version cards, threads, announcements, approvals,
model approval cards, sweep cards, spend (budget alerts, the weekly digest, the near-ceiling
warning, the cost chart).

Cards are updated in place (``chat.update``); each transition is also a reply in the card's
thread; the end of a run is announced in the channel with the requester mentioned. The card
update, the thread reply and the announcement are independent: one failing never skips
another, and the announcement — what the channel must hear — raises when Slack didn't take
it, so the caller keeps it in the version's outbox for the reconcile to deliver later.
Progress refreshes are coalesced so a card is edited at most every ``progress_interval_s``
and a channel at most once a second (Slack's ~1 message/s/channel guidance).

A sweep's card is coalesced the same way, except that what would be dropped is kept: the
newest state held back is shown once the interval has passed (a timer), and a change of the
sweep's status — its end above all — is shown at once. Edits of one card are made in order,
so an older state never replaces a newer one this process showed.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bot.domain import (
    Algorithm,
    Approval,
    ChatUndelivered,
    JobSpec,
    JobVersion,
    ModelVersion,
    Status,
)
from bot.domain.cost import Budget, CostReport
from bot.domain.sweep import Sweep, SweepStatus, Trial
from bot.ports import Links
from bot.slack.blocks import fallback_text, render_blocks
from bot.views import presenters
from bot.views.costs import alert_text, digest_doc, near_ceiling_doc
from bot.views.models import model_card
from bot.views.mrkdwn import code_block, esc, link, mention
from bot.views.sweeps import new_best_text, sweep_card, sweep_ended_text

__all__ = ["SlackChat", "slack_call"]

log = logging.getLogger("trainbot.slack")


def slack_call(method: Callable[..., Any], **kwargs: Any) -> Any:
    """Call a Web API method; a refusal or an unreachable Slack is :class:`ChatUndelivered`
    with Slack's error code (``ratelimited`` for 429 after the client's own retries)."""
    from slack_sdk.errors import SlackApiError

    try:
        return method(**kwargs)
    except SlackApiError as exc:
        status = getattr(exc.response, "status_code", 200)
        code = (exc.response.get("error") if hasattr(exc.response, "get") else None) or (
            "ratelimited" if status == 429 else f"http_{status}")
        detail = ""
        if hasattr(exc.response, "get"):
            messages = (exc.response.get("response_metadata") or {}).get("messages") or []
            detail = "; ".join(str(m) for m in messages[:3])
        log.warning("Slack refused %s: %s %s", getattr(method, "__name__", "call"), code, detail)
        raise ChatUndelivered(code) from exc
    except (OSError, TimeoutError) as exc:  # URLError is an OSError
        log.warning("Slack unreachable for %s: %s", getattr(method, "__name__", "call"),
                    type(exc).__name__)
        raise ChatUndelivered("connection_error") from exc


SweepChart = Callable[[Sweep, Sequence[Trial]], bytes | None]
CostChart = Callable[[CostReport], bytes | None]
# Sweep cards this process remembers (their last edit, what is held back): the oldest go.
_SWEEP_CARDS = 500


@dataclass
class _SweepCard:
    """What this process knows of one sweep card. ``edit`` is held while the card is being
    edited, so edits reach Slack in the order they were decided."""

    edit: threading.Lock = field(default_factory=threading.Lock)
    last_edit: float = 0.0
    status: SweepStatus | None = None
    shown: int = 0  # the sequence number of the newest state on the card
    pending: tuple[int, Sweep, list[Trial]] | None = None
    flush_at: float | None = None  # wall-clock time the held-back state is due
    ended: bool = False


class SlackChat:
    def __init__(
        self,
        client: Any,
        *,
        links: Callable[[JobVersion], Links] | None = None,
        algorithm_of: Callable[[JobSpec], Algorithm | None] | None = None,
        progress_interval_s: float = 5.0,
        chart: Callable[[JobVersion], bytes | None] | None = None,
        confusion_chart: Callable[[JobVersion], bytes | None] | None = None,
        approvers: Callable[[], list[str]] | None = None,
        sweep_chart: SweepChart | None = None,
        spend_chart: CostChart | None = None,
    ) -> None:
        self.client = client
        # Who to tell directly when an approval card can't be posted (user ids).
        self.approvers = approvers or (lambda: [])
        self.links = links or (lambda v: Links())
        # The algorithm a version ran (its objective comes first): read on use, so a
        # team's algorithm registered after this process started is known too.
        self.algorithm_of = algorithm_of or (lambda spec: None)
        # Pictures (matplotlib): given only where drawing them is allowed (off the ack path).
        self.chart = chart
        self.confusion_chart = confusion_chart
        self.sweep_chart = sweep_chart
        self.spend_chart = spend_chart
        self.progress_interval_s = progress_interval_s
        self._last_card_edit: dict[str, float] = {}
        self._last_channel_edit: dict[str, float] = {}
        self._lock = threading.Lock()
        self._sweep_cards: OrderedDict[str, _SweepCard] = OrderedDict()
        self._sweep_seq = 0

    # -- version cards ------------------------------------------------------------------

    def _card(self, version: JobVersion) -> tuple[str, list[dict]]:
        doc = presenters.version_card(version, self.links(version),
                                      algorithm=self._algorithm(version))
        return fallback_text(doc), render_blocks(doc)

    def version_created(self, version: JobVersion) -> tuple[str, str] | None:
        if not version.channel or version.trial is not None:
            return None  # a sweep's trial is shown on the sweep's card, never its own
        text, blocks = self._card(version)
        resp = slack_call(self.client.chat_postMessage, channel=version.channel, text=text,
                          blocks=blocks)
        return resp["channel"], resp["ts"]

    def version_changed(self, version: JobVersion, previous: Status) -> None:
        if not (version.channel and version.message_ts):
            return  # no card (yet): the announcement, if any, goes to the channel itself
        # Independent on purpose: a card that can't be edited must not silence the thread.
        try:
            self._update_card(version)
        except ChatUndelivered:
            pass  # logged with Slack's reason by slack_call
        except Exception:
            log.exception("could not update the card of %s", version.label)
        try:
            slack_call(self.client.chat_postMessage, channel=version.channel,
                       thread_ts=version.message_ts, text=self._transition(version))
        except ChatUndelivered:
            pass
        except Exception:
            log.exception("could not reply in the thread of %s", version.label)

    def progress(self, version: JobVersion) -> None:
        if not (version.channel and version.message_ts) or version.status.terminal:
            return
        if version.status is Status.QUEUED and not version.backend_job_name:
            # Waiting in line, it has no progress: this is its reason or its place in line
            # changing — rare, and lost if coalesced away (nothing refreshes it later).
            self._update_card(version)
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
        slack_call(self.client.chat_update, channel=version.channel, ts=version.message_ts,
                   text=text, blocks=blocks)

    def _algorithm(self, version: JobVersion) -> Algorithm | None:
        """Only decorates (the objective first): a store that can't answer now costs the
        emphasis, never the message."""
        try:
            return self.algorithm_of(version.spec)
        except Exception:
            log.exception("could not find the algorithm of %s", version.label)
            return None

    def _transition(self, v: JobVersion) -> str:
        last = v.history[-1] if v.history else None
        note = f" — {esc(last.message[:2500])}" if last and last.message else ""
        at = f" at {last.at:%H:%M:%S} UTC" if last else ""
        return f"{v.status.emoji} {esc(v.label)} is now *{v.status.value}*{at}{note}"

    def announce(self, version: JobVersion) -> None:
        v = version
        if not v.channel or v.trial is not None:
            return  # a sweep's trial: the sweep's card and end tell it
        who = mention(v.requested_by)
        if v.status is Status.COMPLETED:
            algo = self._algorithm(v)
            metric = algo.objective.metric if algo else None
            value = v.metrics.get(metric) if metric else None
            headline = f" {esc(metric)}={value:.4g}" if value is not None else ""
            tb = self.links(v).tensorboard
            text = f":white_check_mark: {who} *{esc(v.label)}* completed.{headline}" + (
                f" {link(tb, 'TensorBoard')}" if tb else "")
        elif v.status is Status.FAILED:
            tail = "\n".join(v.log_tail[-8:])
            reason = esc((v.failure_reason or "unknown reason")[:1000])
            text = f":x: {who} *{esc(v.label)}* failed: {reason}" + (
                f"\n{code_block(tail[-1500:])}" if tail else "")
        elif v.status is Status.STOPPED:
            text = f":black_square_for_stop: {who} *{esc(v.label)}* stopped."
        else:
            reason = esc((v.failure_reason or "")[:1000])
            text = f":no_entry_sign: {who} *{esc(v.label)}* was not run: {reason}"
        if v.message_ts:
            slack_call(self.client.chat_postMessage, channel=v.channel, thread_ts=v.message_ts,
                       text=text, reply_broadcast=True)
        else:
            slack_call(self.client.chat_postMessage, channel=v.channel, text=text)
        if v.status is Status.COMPLETED and v.message_ts:
            # The pictures go into the thread once, with the announcement (which is delivered
            # once: the outbox claims it); `/train eval` links here rather than posting again.
            for upload in (self._upload_chart, self._upload_confusion_matrix):
                try:
                    upload(v)
                except Exception:  # a picture is a convenience; the announcement went out
                    log.exception("could not upload a picture of %s", v.label)

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

    def _upload_confusion_matrix(self, v: JobVersion) -> None:
        """A classifier's confusion matrix as a picture, into the card's thread."""
        png = self.confusion_chart(v) if self.confusion_chart else None
        if png:
            self.client.files_upload_v2(
                channel=v.channel, thread_ts=v.message_ts, content=png,
                filename=f"{v.job}-v{v.number}-confusion.png",
                title=f"{v.label} confusion matrix")

    def thread_link(self, version: JobVersion) -> str | None:
        if not (version.channel and version.message_ts):
            return None
        try:
            resp = slack_call(self.client.chat_getPermalink, channel=version.channel,
                              message_ts=version.message_ts)
        except ChatUndelivered:
            return None
        link_ = resp.get("permalink")
        return link_ if isinstance(link_, str) else None

    # -- approvals ------------------------------------------------------------------------

    def approval_requested(self, approval: Approval, version: JobVersion) -> tuple[str, str] | None:
        if not version.channel:
            return None
        doc = presenters.approval_doc(approval, version)
        try:
            resp = slack_call(self.client.chat_postMessage, channel=version.channel,
                              text=fallback_text(doc), blocks=render_blocks(doc))
        except ChatUndelivered:
            self._tell_approvers(approval, version)
            raise
        return resp["channel"], resp["ts"]

    def _tell_approvers(self, approval: Approval, version: JobVersion) -> None:
        """The card didn't reach the channel: each approver hears of the request in a DM
        (without buttons — the decision is taken where the allow-list lets it be taken)."""
        text = (f":raising_hand: {mention(approval.requested_by)} asks to run "
                f"*{esc(version.label)}* on `{esc(approval.pool)}` ({esc(approval.reason)}). "
                f"The request card couldn't be posted in the channel, so: "
                f"`/train approve {esc(approval.id)}` or "
                f"`/train reject {esc(approval.id)} --reason …`.")
        for user in dict.fromkeys(self.approvers()):
            if user == approval.requested_by:
                continue
            try:
                slack_call(self.client.chat_postMessage, channel=user, text=text)
            except ChatUndelivered:
                continue  # logged; the requester's answer names the request anyway

    def approval_decided(self, approval: Approval, version: JobVersion) -> None:
        if not (approval.channel and approval.message_ts):
            return
        doc = presenters.approval_doc(approval, version)
        slack_call(self.client.chat_update, channel=approval.channel, ts=approval.message_ts,
                   text=fallback_text(doc), blocks=render_blocks(doc))

    # -- models ---------------------------------------------------------------------------

    def model_registered(self, model: ModelVersion, version: JobVersion | None = None
                         ) -> tuple[str, str] | None:
        """The model's approval card, in the channel of the training version's card
        (``model.channel``) — in that card's thread when ``version`` is given with one."""
        channel = model.channel or (version.channel if version else None)
        if not channel:
            return None
        doc = model_card(model)
        thread = ({"thread_ts": version.message_ts}
                  if version and version.message_ts and version.channel == channel else {})
        resp = slack_call(self.client.chat_postMessage, channel=channel,
                          text=fallback_text(doc), blocks=render_blocks(doc), **thread)
        return resp["channel"], resp["ts"]

    def model_decided(self, model: ModelVersion) -> None:
        if not (model.channel and model.message_ts):
            return
        doc = model_card(model)
        slack_call(self.client.chat_update, channel=model.channel, ts=model.message_ts,
                   text=fallback_text(doc), blocks=render_blocks(doc))

    # -- spend ----------------------------------------------------------------------------

    def budget_alert(self, budget: Budget, month: str, used_usd: float, threshold: int) -> None:
        # A channel's budget in the channel; a user's to the user (a DM: the user id as
        # the channel opens the bot's conversation with them).
        slack_call(self.client.chat_postMessage, channel=budget.subject,
                   text=alert_text(budget, month, used_usd, threshold))

    def cost_digest(self, channel: str, report: CostReport) -> None:
        doc = digest_doc(report)
        resp = slack_call(self.client.chat_postMessage, channel=channel,
                          text=fallback_text(doc), blocks=render_blocks(doc))
        # The chart in the digest's thread: a convenience, the digest was told either way.
        self._upload_cost_chart(resp.get("channel") or channel, report, thread_ts=resp["ts"])

    def near_ceiling(self, version: JobVersion) -> None:
        v = version
        if not (v.channel and v.message_ts):
            return  # no card, no thread to say it in
        doc = near_ceiling_doc(v)
        # ChatUndelivered goes to the caller, which gives the notice back for the next pass.
        slack_call(self.client.chat_postMessage, channel=v.channel, thread_ts=v.message_ts,
                   text=fallback_text(doc), blocks=render_blocks(doc))

    def cost_chart(self, channel: str, report: CostReport) -> None:
        self._upload_cost_chart(channel, report)

    def _upload_cost_chart(self, channel: str, report: CostReport, *,
                           thread_ts: str | None = None) -> None:
        """The report's bar chart into ``channel`` (a thread), best effort: never raises."""
        try:
            png = self.spend_chart(report) if self.spend_chart else None
            if not png:
                return
            period = re.sub(r"[^A-Za-z0-9-]+", "-", report.period).strip("-") or "period"
            thread = {"thread_ts": thread_ts} if thread_ts else {}
            slack_call(self.client.files_upload_v2, channel=channel, content=png,
                       filename=f"cost-{period}-by-{report.by}.png",
                       title=f"Spend by {report.by}, {report.period}", **thread)
        except ChatUndelivered:
            pass
        except Exception:
            log.exception("could not upload the cost chart of %s", report.period)

    # -- sweeps ---------------------------------------------------------------------------

    def _sweep_message(self, sweep: Sweep, trials: Sequence[Trial]) -> tuple[str, list[dict]]:
        doc = sweep_card(sweep, trials)
        return fallback_text(doc), render_blocks(doc)

    def _sweep_card(self, ts: str) -> _SweepCard:
        """This process's record of the card at ``ts`` (call with ``_lock`` held)."""
        card = self._sweep_cards.get(ts)
        if card is None:
            card = self._sweep_cards[ts] = _SweepCard()
            while len(self._sweep_cards) > _SWEEP_CARDS:
                self._sweep_cards.popitem(last=False)
        self._sweep_cards.move_to_end(ts)
        return card

    def sweep_created(self, sweep: Sweep, trials: Sequence[Trial]) -> tuple[str, str] | None:
        if not sweep.channel:
            return None
        text, blocks = self._sweep_message(sweep, trials)
        resp = slack_call(self.client.chat_postMessage, channel=sweep.channel, text=text,
                          blocks=blocks)
        with self._lock:
            card = self._sweep_card(resp["ts"])
            card.status, card.last_edit = sweep.status, time.monotonic()
            self._last_channel_edit[resp["channel"]] = card.last_edit
        return resp["channel"], resp["ts"]

    def sweep_changed(self, sweep: Sweep, trials: Sequence[Trial]) -> None:
        if not (sweep.channel and sweep.message_ts):
            return  # no card: the end, when it comes, goes to the channel itself
        try:
            self._change_sweep_card(sweep, list(trials))
        except ChatUndelivered:
            pass  # logged with Slack's reason by slack_call
        except Exception:
            log.exception("could not update the card of %s", sweep.label)

    def _sweep_wait(self, card: _SweepCard, channel: str, now: float) -> float:
        """How long until the card may be edited again (call with ``_lock`` held)."""
        return max(card.last_edit + self.progress_interval_s - now,
                   self._last_channel_edit.get(channel, 0.0) + 1.0 - now)

    def _hold_back(self, card: _SweepCard, ts: str, channel: str, wait: float) -> None:
        """Show the held-back state in ``wait`` seconds (call with ``_lock`` held)."""
        card.flush_at = time.time() + wait
        timer = threading.Timer(wait, self._flush_sweep_card, args=(ts, channel))
        timer.daemon = True
        timer.start()

    def _change_sweep_card(self, sweep: Sweep, trials: list[Trial]) -> None:
        ts, channel = sweep.message_ts or "", sweep.channel or ""
        now = time.monotonic()
        with self._lock:
            card = self._sweep_card(ts)
            if card.ended and not sweep.status.terminal:
                return  # an older state, after the end was shown
            self._sweep_seq += 1
            seq = self._sweep_seq
            wait = self._sweep_wait(card, channel, now)
            if wait > 0 and not sweep.status.terminal and sweep.status is card.status:
                card.pending = (seq, sweep, trials)  # the newest held back wins
                if card.flush_at is None:
                    self._hold_back(card, ts, channel, wait)
                return
            card.pending = None  # this newer state supersedes what was held back
            card.status, card.last_edit, card.ended = sweep.status, now, sweep.status.terminal
            self._last_channel_edit[channel] = now
        self._edit_sweep_card(card, seq, sweep, trials)

    def _flush_sweep_card(self, ts: str, channel: str) -> None:
        """The timer: show the newest state held back, unless it is stale by now."""
        now = time.monotonic()
        with self._lock:
            card = self._sweep_cards.get(ts)
            if card is None or card.flush_at is None:
                return
            late = time.time() - card.flush_at
            if card.pending is None or late > max(60.0, 4 * self.progress_interval_s):
                # Nothing held back, or this process slept (a frozen Lambda) and what it
                # held back may be old news: the next change shows the card as it is.
                card.pending = card.flush_at = None
                return
            wait = self._sweep_wait(card, channel, now)
            if wait > 0:  # another edit went out meanwhile
                self._hold_back(card, ts, channel, wait)
                return
            seq, sweep, trials = card.pending
            card.pending = card.flush_at = None
            card.status, card.last_edit = sweep.status, now
            self._last_channel_edit[channel] = now
        try:
            self._edit_sweep_card(card, seq, sweep, trials)
        except ChatUndelivered:
            pass
        except Exception:
            log.exception("could not update the card of %s", sweep.label)

    def _edit_sweep_card(self, card: _SweepCard, seq: int, sweep: Sweep,
                         trials: list[Trial]) -> None:
        with card.edit:  # in order: an older state never lands after a newer one
            if seq < card.shown:
                return
            text, blocks = self._sweep_message(sweep, trials)
            slack_call(self.client.chat_update, channel=sweep.channel, ts=sweep.message_ts,
                       text=text, blocks=blocks)
            card.shown = seq

    def sweep_new_best(self, sweep: Sweep, trial: Trial) -> None:
        if not (sweep.channel and sweep.message_ts):
            return  # no card, no thread: the end tells the channel the best
        slack_call(self.client.chat_postMessage, channel=sweep.channel,
                   thread_ts=sweep.message_ts, text=new_best_text(sweep, trial))

    def sweep_ended(self, sweep: Sweep, trials: Sequence[Trial]) -> None:
        if not sweep.channel:
            return
        text = sweep_ended_text(sweep, trials)
        if not sweep.message_ts:
            slack_call(self.client.chat_postMessage, channel=sweep.channel, text=text)
            return
        slack_call(self.client.chat_postMessage, channel=sweep.channel,
                   thread_ts=sweep.message_ts, text=text, reply_broadcast=True)
        # The chart goes into the thread once, with the end (delivered once: the outbox
        # claims it). A picture is a convenience: the end was told either way.
        try:
            png = self.sweep_chart(sweep, trials) if self.sweep_chart else None
            if png:
                slack_call(self.client.files_upload_v2, channel=sweep.channel,
                           thread_ts=sweep.message_ts, content=png,
                           filename=f"{sweep.name}-objective.png",
                           title=f"{sweep.label}: objective by trial")
        except ChatUndelivered:
            pass
        except Exception:
            log.exception("could not upload the chart of %s", sweep.label)
