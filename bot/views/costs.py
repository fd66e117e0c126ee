"""Presenters of spend: the cost report, the budgets, a budget alert, the weekly digest, the
near-ceiling warning.

Every subject of a report is a value someone typed (a job's name, an algorithm id) or an id:
ids become mentions only when they are well-formed (:func:`~bot.views.mrkdwn.mention`,
:func:`~bot.views.mrkdwn.channel`), anything else is shown in a code span it can't break out
of. Amounts are USD with cents.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING

from bot.domain import JobVersion
from bot.domain.cost import Budget, BudgetPolicy, BudgetScope, CostReport, CostRow
from bot.views.doc import Button, Doc
from bot.views.mrkdwn import channel, code, esc, mention

if TYPE_CHECKING:
    from bot.services.budgets import BudgetStanding

__all__ = ["alert_text", "budgets_doc", "cost_doc", "digest_doc", "near_ceiling_doc",
           "subject_text", "usd"]

ROWS_SHOWN = 15
BAR_WIDTH = 10


def usd(x: float) -> str:
    return f"${x:,.2f}"


def subject_text(by: str, subject: str) -> str:
    """A report row's subject as Slack shows it: a user or a channel mentioned when it is
    one, anything else (a pool, an algorithm, a job — or a malformed id) as code."""
    if by == "user":
        shown = mention(subject)
        return shown if shown.startswith("<@") else code(subject)  # a CLI user's name
    if by == "channel":
        return channel(subject) if subject[:1] in "CG" else code(subject)
    return code(subject)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("s" if n != 1 else "")


def _bar(share: float) -> str:
    """A row's share of the largest row as a small text bar."""
    full = round(max(0.0, min(1.0, share)) * BAR_WIDTH)
    return "▇" * full + "·" * (BAR_WIDTH - full)


def _line(by: str, r: CostRow, top: float) -> str:
    amount = r.spent_usd + r.committed_usd
    committed = f" + {usd(r.committed_usd)} running (ceiling)" if r.committed_usd else ""
    saving = f" · spot saved {usd(r.spot_saving_usd)}" if r.spot_saving_usd else ""
    bar = f"`{_bar(amount / top)}` " if top > 0 else ""
    return (f"{bar}{subject_text(by, r.subject)} *{usd(r.spent_usd)}*{committed} · "
            f"{_plural(r.versions, 'ended run')}{saving}")


def _rows(by: str, rows: Sequence[CostRow], limit: int = ROWS_SHOWN) -> str:
    shown = list(rows[:limit])
    top = max((r.spent_usd + r.committed_usd for r in shown), default=0.0)
    more = len(rows) - len(shown)
    return "\n".join(_line(by, r, top) for r in shown) + (f"\n… {more} more" if more > 0 else "")


def _where(report: CostReport) -> str:
    return f" in {channel(report.channel)}" if report.channel else ""


def cost_doc(report: CostReport) -> Doc:
    """`/train cost`: the totals, one line per subject (most first), the top jobs."""
    t = report.total
    doc = Doc(title=f":moneybag: Spend — {esc(report.period)}{_where(report)}")
    fields = [("Spent", usd(t.spent_usd)), ("Ended runs", str(t.versions))]
    if t.committed_usd:
        fields.insert(1, ("Running now (ceiling)", usd(t.committed_usd)))
    if t.spot_saving_usd:
        fields.append(("Spot saved", usd(t.spot_saving_usd)))
    doc.add(fields=fields)
    if report.rows:
        doc.add(f"*By {esc(report.by)}*\n" + _rows(report.by, report.rows))
    if report.top_jobs:
        doc.add("*Top jobs*\n" + _rows("job", report.top_jobs))
    if not (report.rows or t.spent_usd or t.committed_usd):
        doc.add("Nothing spent in this period.")
    doc.context.append(f"{report.since:%Y-%m-%d %H:%M} → {report.until:%Y-%m-%d %H:%M} UTC · "
                       "actual cost = billable time × the pool's price (locally: wall time); "
                       "running = the ceiling of what still runs")
    return doc


def _owner(budget: Budget) -> str:
    if budget.scope is BudgetScope.CHANNEL:
        return channel(budget.subject)
    return mention(budget.subject)


def _over(budget: Budget) -> str:
    return ("launches over it need an approver's OK" if budget.policy is BudgetPolicy.APPROVE
            else "launches over it are refused")


def _upper_first(text: str) -> str:
    return text[:1].upper() + text[1:]


def budgets_doc(standings: Sequence[BudgetStanding]) -> Doc:
    """`/train budget`: each budget with its month so far."""
    doc = Doc(title=":moneybag: Monthly budgets")
    if not standings:
        doc.add("No budgets. An admin sets one with `/train budget set #channel 500` "
                "(or `@user`).")
    for s in standings:
        b = s.budget
        flag = (":rotating_light: " if s.percent >= 100 else
                ":warning: " if s.percent >= 80 else "")
        doc.add(f"{flag}{_owner(b)} *{usd(s.used_usd)}* of {usd(b.limit_usd)} used in "
                f"{esc(s.month)} ({s.percent:.0f} %) `{_bar(s.percent / 100)}`\n"
                f"{_upper_first(_over(b))}"
                + (" · from the config file" if b.source == "config" else
                   f" · set by {mention(b.set_by)}" if b.set_by else ""))
    doc.context.append("used = spent + the ceiling of what still runs · alerts at 80 % and "
                       "100 % · `/train cost --by channel` for the detail")
    return doc


def alert_text(budget: Budget, month: str, used_usd: float, threshold: int) -> str:
    """A budget's 80 % or 100 % alert: in the channel, or to the user directly."""
    emoji = ":rotating_light:" if threshold >= 100 else ":warning:"
    percent = 100 * used_usd / budget.limit_usd
    if budget.scope is BudgetScope.CHANNEL:
        who, whose = f"{_owner(budget)} has", "its"
    else:
        who, whose = "You have", "your"
    reached = "its limit" if threshold >= 100 else f"{threshold} %"
    return (f"{emoji} Budget alert — {reached} reached: {who} used *{usd(used_usd)}* of "
            f"{whose} {usd(budget.limit_usd)} monthly budget for {esc(month)} "
            f"({percent:.0f} %). {_upper_first(_over(budget))}. "
            f"`/train cost --month {esc(month)}` shows what it went on.")


def digest_doc(report: CostReport) -> Doc:
    """The weekly digest of a channel's spend (by user, with the top jobs)."""
    doc = cost_doc(report)
    doc.title = f":bar_chart: Weekly spend — {esc(report.period)}{_where(report)}"
    doc.context.append("`/train cost` for this month · `/train budget` for the budgets")
    return doc


def _duration(seconds: float) -> str:
    d = timedelta(seconds=int(seconds))
    hours, rest = divmod(int(d.total_seconds()), 3600)
    minutes = rest // 60
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m"


def near_ceiling_doc(v: JobVersion) -> Doc:
    """In a version's thread: it has used 80 % of its max runtime; Stop now?"""
    limit = v.spec.max_runtime_s
    doc = Doc(title=f":hourglass: *{esc(v.label)}* has used 80 % of its "
                    f"{_duration(limit)} max runtime")
    fields = []
    if v.started_at is not None and not v.spec.spot:  # spot: waits for capacity don't count
        fields.append(("Stopped at", f"{v.started_at + timedelta(seconds=limit):%Y-%m-%d %H:%M}"
                                     " UTC at the latest"))
    if v.estimated_cost_usd is not None:
        ceiling = f"≤ {usd(v.estimated_cost_usd)}"
        if v.spec.spot and v.estimated_spot_cost_usd is not None:
            ceiling += f" · spot ≈ {usd(v.estimated_spot_cost_usd)}"
        fields.append(("Ceiling", ceiling))
    doc.add("It will be stopped at its limit (a checkpoint it saved is kept). Stop it now if "
            "it won't finish usefully.", fields=fields)
    doc.buttons.append(Button("Stop", "stop_version", f"{v.job}:{v.number}", style="danger",
                              confirm=f"Stop {esc(v.label)}? The run ends and can't be "
                                      "resumed."))
    return doc
