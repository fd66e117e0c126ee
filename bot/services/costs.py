"""What was spent, and on what: the cost report, the weekly digest, the near-ceiling warning.

A month's (or a week's) report reads the ledger — a few counters per user, channel, pool,
algorithm and job, kept by the store with each launch and end — so its cost doesn't grow with
the number of versions. A report over the last N days sums the versions that ended in them
(through the index of ended versions).
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from datetime import datetime, timedelta
from functools import partial

from bot.domain import InvalidInput, JobVersion, Status
from bot.domain.cost import (
    CostReport,
    CostRow,
    LedgerEntry,
    month_of,
    month_start,
    previous_week,
    week_start,
)
from bot.services.context import Deps
from bot.services.versions import MAX_ATTEMPTS, mutate_version, try_chat

__all__ = ["BY", "CostReport", "cost_report", "note_job_spend", "send_weekly_digests",
           "top_jobs", "warn_near_ceiling"]

log = logging.getLogger("trainbot")
BY = ("user", "channel", "pool", "algorithm")
TOP_JOBS = 5
_KEPT_JOBS = 10  # a job can fall back below others' spend; keep a margin
DIGEST_LEASE = timedelta(minutes=5)
CEILING_SHARE = 0.8  # a running version is warned at 80 % of its max runtime
_SINCE = re.compile(r"^\s*(\d{1,3})\s*([dhw])\s*$")
_MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


def cost_report(deps: Deps, *, month: str | None = None, since: str | None = None,
                by: str = "pool") -> CostReport:
    """Spend of ``month`` (``2026-11``; the current one by default) or of the last
    ``since`` (``7d``, ``36h``, ``2w``), grouped ``by`` user, channel, pool or algorithm."""
    if by not in BY:
        raise InvalidInput(f"`--by {by[:20]}` isn't a grouping: use one of {', '.join(BY)}.")
    if month is not None and since is not None:
        raise InvalidInput("Give `--month` or `--since`, not both.")
    now = deps.clock.now()
    if since is not None:
        return _since_report(deps, _duration(since), by=by, now=now)
    month = month or month_of(now)
    if not _MONTH.match(month):
        raise InvalidInput(f"`--month {month[:20]}` isn't a month: write it like 2026-11.")
    return ledger_report(deps, month, by=by, since=month_start(month),
                         until=min(now, _next_month(month_start(month))))


def ledger_report(deps: Deps, period: str, *, by: str, since: datetime,
                  until: datetime) -> CostReport:
    """A month's or a week's report from its ledger counters (three reads of the ledger)."""
    total = deps.store.get_ledger(period, ["total"]).get("total") or LedgerEntry(
        period=period, key="total")
    rows = sorted((_row(e) for e in deps.store.list_ledger(period, by)),
                  key=lambda r: (-r.spent_usd - r.committed_usd, r.subject))
    jobs = top_jobs(deps, period)
    return CostReport(period=period, since=since, until=until, by=by, total=_row(total),
                      rows=rows, top_jobs=jobs)


def top_jobs(deps: Deps, period: str) -> list[CostRow]:
    """The period's most expensive jobs (one read: a record kept as versions end)."""
    doc, _ = deps.store.get_record(f"top-jobs:{period}")
    rows = [CostRow.model_validate(r) for r in (doc or {}).get("jobs", [])]
    return sorted(rows, key=lambda r: (-r.spent_usd, r.subject))[:TOP_JOBS]


def note_job_spend(deps: Deps, version: JobVersion) -> None:
    """A charged version ended: its job's spend (the ledger's counter) goes into each of
    its periods' top-jobs record (compare-and-set; the ten most expensive are kept)."""
    if version.charged_usd is None or not version.charge_periods:
        return
    key = f"job:{version.job}"
    for period in version.charge_periods:
        for _ in range(MAX_ATTEMPTS):
            doc, revision = deps.store.get_record(f"top-jobs:{period}")
            # Read after the record: a concurrent end's newer total can't be overwritten.
            entry = deps.store.get_ledger(period, [key]).get(key)
            if entry is None:
                break
            row = _row(entry).model_copy(update={"subject": version.job,
                                                 "committed_usd": 0.0})
            rows = {r["subject"]: r for r in (doc or {}).get("jobs", [])}
            rows[version.job] = row.model_dump()
            kept = sorted(rows.values(), key=lambda r: (-r["spent_usd"], r["subject"]))
            if deps.store.put_record(f"top-jobs:{period}", {"jobs": kept[:_KEPT_JOBS]},
                                     revision=revision):
                break


def _row(entry: LedgerEntry) -> CostRow:
    return CostRow(subject=entry.subject or entry.key, spent_usd=round(entry.spent_usd, 4),
                   committed_usd=round(max(0.0, entry.committed_usd), 4),
                   versions=entry.versions, spot_saving_usd=round(entry.spot_saving_usd, 4))


def _duration(raw: str) -> timedelta:
    m = _SINCE.match(raw)
    if m is None or int(m.group(1)) < 1:
        raise InvalidInput(f"`--since {raw[:20]}` isn't a span: write e.g. 7d, 36h or 2w.")
    n = int(m.group(1))
    span = {"h": timedelta(hours=n), "d": timedelta(days=n), "w": timedelta(weeks=n)}
    return span[m.group(2)]


def _next_month(start: datetime) -> datetime:
    return (start + timedelta(days=32)).replace(day=1)


def _subject(v: JobVersion, by: str) -> str:
    return {"user": v.requested_by, "channel": v.channel or "(no channel)",
            "pool": v.spec.pool, "algorithm": v.spec.algorithm, "job": v.job}[by]


def _since_report(deps: Deps, span: timedelta, *, by: str, now: datetime,
                  channel: str | None = None, period: str | None = None) -> CostReport:
    """Versions that ended in the span (the ended-versions index), summed."""
    since = now - span
    ended = [v for v in deps.store.list_ended_since(since)
             if v.ended_at is not None and since <= v.ended_at <= now
             and (channel is None or v.channel == channel)]
    return _summed(ended, by=by, since=since, until=now, channel=channel,
                   period=period or f"last {_span_words(span)}")


def _summed(versions: list[JobVersion], *, by: str, since: datetime, until: datetime,
            channel: str | None, period: str) -> CostReport:
    groups: dict[str, list[JobVersion]] = defaultdict(list)
    jobs: dict[str, list[JobVersion]] = defaultdict(list)
    for v in versions:
        groups[_subject(v, by)].append(v)
        jobs[v.job].append(v)

    def row(subject: str, vs: list[JobVersion]) -> CostRow:
        return CostRow(subject=subject,
                       spent_usd=round(sum(v.actual_cost_usd or 0.0 for v in vs), 4),
                       versions=len(vs),
                       spot_saving_usd=round(sum(v.spot_saving_usd or 0.0 for v in vs), 4))

    rows = sorted((row(k, vs) for k, vs in groups.items()),
                  key=lambda r: (-r.spent_usd, r.subject))
    top = sorted((row(k, vs) for k, vs in jobs.items()),
                 key=lambda r: (-r.spent_usd, r.subject))[:TOP_JOBS]
    return CostReport(period=period, since=since, until=until, by=by,
                      total=row("total", versions), rows=rows, top_jobs=top, channel=channel)


def _span_words(span: timedelta) -> str:
    hours = int(span.total_seconds() // 3600)
    if hours % 24:
        return f"{hours} hours"
    days = hours // 24
    return f"{days} day" + ("s" if days != 1 else "")


def send_weekly_digests(deps: Deps) -> list[str]:
    """Post last week's spend — the runs that ended in it — to each channel that had some,
    once per channel and week (a claimed notice: retried on the next pass when Slack didn't
    take it). Returns the channels told. One read of the week's ended versions (the index),
    once a pass."""
    now = deps.clock.now()
    week = previous_week(now)
    start = week_start(week)
    told: list[str] = []
    # The week's runs that ended (what the digest sums), and so the channels that get one.
    ended = [v for v in deps.store.list_ended_since(start)
             if v.ended_at is not None and v.ended_at < start + timedelta(days=7)
             and v.channel and v.actual_cost_usd]
    for channel in sorted({v.channel for v in ended if v.channel}):
        key = f"digest:{channel}:{week}"
        if not deps.store.claim_notice(key, now=now, lease=DIGEST_LEASE):
            continue
        # By pool, not by user: a weekly digest mustn't ping everyone who spent.
        report = _summed([v for v in ended if v.channel == channel], by="pool",
                         since=start, until=start + timedelta(days=7), channel=channel,
                         period=week)
        _, error = try_chat(f"weekly digest of {channel}",
                            partial(deps.chat.cost_digest, channel, report))
        deps.store.settle_notice(key, told=error is None)
        if error is None:
            told.append(channel)
    return told


def warn_near_ceiling(deps: Deps, version: JobVersion) -> JobVersion:
    """Warn once, in its card's thread, a running version that reached 80 % of its max
    runtime: a claimed notice (a pass that couldn't tell it gives it back for the next), then
    the version's flag so later passes skip it without a read. A version without a card (a
    sweep's trial) is only flagged."""
    if version.ceiling_warned or version.status not in (Status.STARTING, Status.TRAINING) \
            or version.started_at is None:
        return version
    elapsed = (deps.clock.now() - version.started_at).total_seconds()
    if elapsed < CEILING_SHARE * version.spec.max_runtime_s:
        return version
    key = f"ceiling:{version.job}:{version.number}"
    if version.message_ts and deps.store.claim_notice(key, now=deps.clock.now(),
                                                      lease=DIGEST_LEASE):
        _, error = try_chat(f"near-ceiling warning of {version.label}",
                            partial(deps.chat.near_ceiling, version))
        deps.store.settle_notice(key, told=error is None)
        if error is not None:
            return version  # told on the next pass
    _, after = mutate_version(
        deps.store, version.job, version.number,
        lambda v: v.model_copy(update={"ceiling_warned": True})
        if not v.ceiling_warned and not v.status.terminal else v)
    return after
