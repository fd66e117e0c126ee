"""Who may do what. Every check raises :class:`NotAllowed` saying who can."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from bot.config import RerunApproval
from bot.domain import Approval, JobVersion, NotAllowed, Preset, ResourcePool
from bot.domain.cost import Budget, BudgetScope

__all__ = ["MembershipCheck", "Policy", "no_groups"]

# (user_id, group_id) -> is the user a member? Slack user groups start with "S".
MembershipCheck = Callable[[str, str], bool]


def no_groups(user: str, group: str) -> bool:
    return False


@dataclass
class Policy:
    approvers: list[str] = field(default_factory=list)
    admins: list[str] = field(default_factory=list)
    channels: list[str] = field(default_factory=list)
    rerun_approval: RerunApproval = RerunApproval.ALWAYS
    allow_self_approval: bool = False
    approval_ttl_minutes: int = 24 * 60
    is_member: MembershipCheck = no_groups
    # Who may register (and remove) a team's own algorithms, besides the admins.
    algorithm_publishers: list[str] = field(default_factory=list)
    # Active versions one user / one channel may have (every pool); pools may say their own.
    max_active_per_user: int | None = None
    max_active_per_channel: int | None = None
    # Budgets from the config file (TRAINBOT_BUDGETS); the store's override them.
    budgets: list[Budget] = field(default_factory=list)

    def budget(self, scope: BudgetScope, subject: str) -> Budget | None:
        """The config file's budget of that channel or user, if any."""
        return next((b for b in self.budgets if b.scope is scope and b.subject == subject),
                    None)

    def caps_for(self, version: JobVersion, pool: ResourcePool) -> dict[str, int]:
        """The caps a launch of ``version`` on ``pool`` takes a place in (key → limit),
        besides the pool's own ``max_concurrent``."""
        return self.caps_of(version.requested_by, version.channel, pool)

    def caps_of(self, user: str, channel: str | None, pool: ResourcePool) -> dict[str, int]:
        """The caps a launch by ``user`` in ``channel`` on ``pool`` counts against."""
        caps: dict[str, int] = {}
        if self.max_active_per_user is not None:
            caps[f"user:{user}"] = self.max_active_per_user
        if pool.max_active_per_user is not None:
            caps[f"pool-user:{pool.id}:{user}"] = pool.max_active_per_user
        if channel and self.max_active_per_channel is not None:
            caps[f"channel:{channel}"] = self.max_active_per_channel
        if channel and pool.max_active_per_channel is not None:
            caps[f"pool-channel:{pool.id}:{channel}"] = pool.max_active_per_channel
        return caps

    def _in(self, user: str, ids: list[str]) -> bool:
        return any(user == i or (i.startswith("S") and self.is_member(user, i)) for i in ids)

    def approval_deadline(self, requested_at: datetime) -> datetime:
        """When a request made at ``requested_at`` expires."""
        return requested_at + timedelta(minutes=self.approval_ttl_minutes)

    def is_admin(self, user: str) -> bool:
        return self._in(user, self.admins)

    def is_approver(self, user: str) -> bool:
        return self._in(user, self.approvers) or self.is_admin(user)

    def can_publish(self, user: str) -> bool:
        """May ``user`` add or remove registered algorithms (a publisher or an admin)?"""
        return self._in(user, self.algorithm_publishers) or self.is_admin(user)

    def check_publish(self, user: str, *, action: Literal["add", "remove"] = "add") -> None:
        if self.can_publish(user):
            return
        what = f"Only admins or algorithm publishers may {action} algorithms"
        who = list(dict.fromkeys(self.algorithm_publishers + self.admins))
        if not who:
            raise NotAllowed(f"{what}, and there are none.",
                             hint="Set TRAINBOT_ALGORITHM_PUBLISHERS (or TRAINBOT_ADMINS).")
        raise NotAllowed(f"{what}. Ask one of: {_people(who)}.")

    def allows_channel(self, channel: str) -> bool:
        """Whether trainbot works in ``channel`` (every channel when there's no allow-list)."""
        return not self.channels or channel in self.channels

    def check_channel(self, channel: str | None) -> None:
        if channel is not None and not self.allows_channel(channel):
            raise NotAllowed(
                "trainbot doesn't take commands in this channel.",
                hint="Use one of: " + ", ".join(f"<#{c}>" for c in self.channels) + ".",
            )

    def check_slack_channel(self, channel: str | None) -> None:
        """Every request from Slack (command, button, form, options) comes from a channel on
        the allow-list, when there is one; a request that names no channel is refused."""
        if self.channels and channel not in self.channels:
            raise NotAllowed(
                "trainbot doesn't take requests from here.",
                hint="Use one of: " + ", ".join(f"<#{c}>" for c in self.channels) + ".",
            )

    def check_launch(self, user: str, pool: ResourcePool) -> None:
        if pool.allowed_launchers and not (
            self._in(user, pool.allowed_launchers) or self.is_admin(user)
        ):
            raise NotAllowed(
                f"You may not launch on pool `{pool.id}`.",
                hint="Allowed: " + _people(pool.allowed_launchers + self.admins)
                + ". Pick another pool with `--pool`, or ask one of them.",
            )

    def needs_approval(self, pool: ResourcePool, *, rerun: bool) -> bool:
        if pool.requires_approval:
            return True
        if not rerun:
            return False
        if self.rerun_approval is RerunApproval.ALWAYS:
            return True
        return self.rerun_approval is RerunApproval.GPU and pool.is_gpu

    def check_decide(self, user: str, approval: Approval) -> None:
        if not self.is_approver(user):
            who = _people(self.approvers + self.admins) if (self.approvers or self.admins) else (
                "nobody yet — set TRAINBOT_APPROVERS"
            )
            raise NotAllowed(f"Only approvers can decide this request: {who}.")
        if user == approval.requested_by and not self.allow_self_approval:
            raise NotAllowed(
                "You can't decide your own request.",
                hint="Ask another approver (self-approval is off: TRAINBOT_ALLOW_SELF_APPROVAL).",
            )

    def check_stop(self, user: str, version: JobVersion) -> None:
        if user != version.requested_by and not self.is_approver(user):
            raise NotAllowed(
                f"Only <@{version.requested_by}> (who started {version.label}), an approver or "
                "an admin can stop it."
            )

    def check_delete_preset(self, user: str, preset: Preset) -> None:
        if user != preset.owner and not self.is_admin(user):
            raise NotAllowed(
                f"Only <@{preset.owner}> (its owner) or an admin can delete preset `{preset.name}`."
            )


def _people(ids: list[str]) -> str:
    return ", ".join(f"<!subteam^{i}>" if i.startswith("S") else f"<@{i}>" for i in ids) or "nobody"
