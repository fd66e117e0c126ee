"""Monthly budgets per channel and per user: checked before a launch, alerts at 80 % and
100 %, set by admins (``/train budget set``) or a config file.

A check reads a constant number of counters — the budgets of the launch's channel and user
and their month's ledger entries — whatever the number of versions. A launch whose ceiling
would take a budget over its limit needs an approver's OK (policy ``approve``, the default)
or is refused (``refuse``). Alerts are told once per budget, month and threshold (a claimed
notice, retried by the reconcile until Slack took it).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

from bot.domain import InvalidInput, NotAllowed, NotFound
from bot.domain.cost import (
    ALERT_THRESHOLDS,
    Budget,
    BudgetPolicy,
    BudgetScope,
    LedgerEntry,
    month_of,
)
from bot.services.context import Deps
from bot.services.versions import try_chat

__all__ = ["BudgetStanding", "OverBudget", "budgets_for", "check_budgets", "list_budgets",
           "remove_budget", "set_budget", "standing", "tell_alerts"]

log = logging.getLogger("trainbot")
ALERT_LEASE = timedelta(minutes=2)


@dataclass(frozen=True)
class BudgetStanding:
    budget: Budget
    month: str
    entry: LedgerEntry

    @property
    def used_usd(self) -> float:
        return self.entry.used_usd

    @property
    def percent(self) -> float:
        return 100.0 * self.used_usd / self.budget.limit_usd


@dataclass(frozen=True)
class OverBudget:
    """A launch that would take a budget over its limit (policy ``approve``): the approval
    card says so."""

    standing: BudgetStanding
    estimate_usd: float

    @property
    def reason(self) -> str:
        b = self.standing.budget
        who = "this channel" if b.scope is BudgetScope.CHANNEL else "the requester"
        return (f"over budget: ${self.standing.used_usd:,.2f} of ${b.limit_usd:,.2f} used "
                f"by {who} in {self.standing.month}; this launch ≤ ${self.estimate_usd:,.2f}")


def budgets_for(deps: Deps, *, user: str, channel: str | None) -> list[Budget]:
    """The budgets a launch counts against: its channel's and its requester's (the store's,
    else the config file's)."""
    out = []
    for scope, subject in ((BudgetScope.CHANNEL, channel), (BudgetScope.USER, user)):
        if not subject:
            continue
        found = deps.store.get_budget(scope, subject) or deps.policy.budget(scope, subject)
        if found is not None:
            out.append(found)
    return out


def standing(deps: Deps, budgets: Iterable[Budget], *, now: datetime) -> list[BudgetStanding]:
    budgets = list(budgets)
    month = month_of(now)
    entries = deps.store.get_ledger(month, [b.key for b in budgets]) if budgets else {}
    return [BudgetStanding(b, month, entries.get(b.key) or LedgerEntry(period=month, key=b.key))
            for b in budgets]


def check_budgets(deps: Deps, *, user: str, channel: str | None,
                  estimate_usd: float) -> OverBudget | None:
    """Whether a launch with ceiling ``estimate_usd`` fits the budgets it counts against:
    None when it does (or there are none); :class:`OverBudget` when one needs an approver's
    OK; ``InvalidInput`` when one refuses it."""
    if estimate_usd <= 0:
        return None
    over: OverBudget | None = None
    for s in standing(deps, budgets_for(deps, user=user, channel=channel),
                      now=deps.clock.now()):
        if s.used_usd + estimate_usd <= s.budget.limit_usd:
            continue
        found = OverBudget(s, estimate_usd)
        if s.budget.policy is BudgetPolicy.REFUSE:
            raise InvalidInput(
                f"Refused: {found.reason}, and this budget refuses what goes over it.",
                hint="Ask an admin to raise it (`/train budget set …`), or ask for less: a "
                     "smaller pool, `--max-runtime`, `--spot`.")
        over = over or found
    return over


def tell_alerts(deps: Deps, budgets: Iterable[Budget]) -> list[str]:
    """Tell each budget's 80 % and 100 % alerts that are due and not told yet (once per
    month each: a claimed notice; given back when the chat didn't take it). Returns the
    notices told."""
    told = []
    now = deps.clock.now()
    for s in standing(deps, budgets, now=now):
        for threshold in ALERT_THRESHOLDS:
            if s.percent < threshold:
                continue
            key = f"alert:{s.budget.key}:{s.month}:{threshold}"
            if not deps.store.claim_notice(key, now=now, lease=ALERT_LEASE):
                continue
            _, error = try_chat(f"budget alert {key}", partial(
                deps.chat.budget_alert, s.budget, s.month, s.used_usd, threshold))
            deps.store.settle_notice(key, told=error is None)
            if error is None:
                told.append(key)
    return told


def _check_admin(deps: Deps, user: str) -> None:
    if not deps.policy.is_admin(user):
        admins = ", ".join(f"<@{a}>" for a in deps.policy.admins) or "none (TRAINBOT_ADMINS)"
        raise NotAllowed(f"Only admins may set budgets: {admins}.")


def set_budget(deps: Deps, *, user: str, scope: BudgetScope, subject: str, limit_usd: float,
               policy: BudgetPolicy = BudgetPolicy.APPROVE) -> Budget:
    _check_admin(deps, user)
    try:
        budget = Budget(scope=scope, subject=subject, limit_usd=limit_usd, policy=policy,
                        set_by=user, set_at=deps.clock.now())
    except ValueError:
        raise InvalidInput(f"`{limit_usd}` isn't a budget: give USD above 0, e.g. 500.") \
            from None
    stored = deps.store.put_budget(budget)
    tell_alerts(deps, [stored])  # a lower limit may be crossed already
    return stored


def remove_budget(deps: Deps, *, user: str, scope: BudgetScope, subject: str) -> None:
    _check_admin(deps, user)
    try:
        deps.store.delete_budget(scope, subject)
    except NotFound:
        raise NotFound(f"There is no budget for that {scope.value}.",
                       hint="`/train budget` lists them.") from None


def list_budgets(deps: Deps) -> list[BudgetStanding]:
    """Every budget (the store's, then the config file's it doesn't override) with its
    month so far."""
    stored = deps.store.list_budgets()
    keys = {b.key for b in stored}
    budgets = stored + [b for b in deps.policy.budgets if b.key not in keys]
    return standing(deps, budgets, now=deps.clock.now())
