"""What every service function takes: the ports and the policy, wired once by bootstrap."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta

from bot.catalog import Catalog
from bot.ports import Chat, Clock, Compute, JobStore
from bot.services.authz import Policy

__all__ = ["Deps", "NullChat"]

log = logging.getLogger("trainbot")


class NullChat:
    """A Chat that tells nobody (the CLI prints instead)."""

    def version_created(self, version):  # type: ignore[no-untyped-def]
        return None

    def version_changed(self, version, previous):  # type: ignore[no-untyped-def]
        return None

    def announce(self, version):  # type: ignore[no-untyped-def]
        return None

    def progress(self, version):  # type: ignore[no-untyped-def]
        return None

    def approval_requested(self, approval, version):  # type: ignore[no-untyped-def]
        return None

    def approval_decided(self, approval, version):  # type: ignore[no-untyped-def]
        return None


@dataclass
class Deps:
    store: JobStore
    compute: Compute
    catalog: Catalog
    clock: Clock
    policy: Policy
    chat: Chat = field(default_factory=NullChat)
    job_prefix: str = "trainbot"
    scope: str = "local"
    # A running version silent for longer than this is reported as stuck.
    stuck_after: timedelta = timedelta(minutes=30)
