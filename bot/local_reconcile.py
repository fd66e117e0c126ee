"""The scheduled reconcile, for a bot running on one machine (`trainbot run` / `serve`).

On AWS an EventBridge schedule invokes the reconcile Lambda; locally nothing would, so
approvals would never expire, stuck versions never be flagged and QUEUED versions never
dispatch. :class:`ReconcileTimer` runs the very same pass
(:func:`bot.services.reconcile.reconcile`) every ``interval_s`` in a daemon thread of the
process that serves the bot, which is the one process owning the background work.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from types import TracebackType

from bot.services.context import Deps
from bot.services.reconcile import ReconcileSummary, reconcile

__all__ = ["ReconcileTimer"]

log = logging.getLogger("trainbot.reconcile")

Reconcile = Callable[[Deps], ReconcileSummary]


class ReconcileTimer:
    """Runs ``reconcile(deps)`` every ``interval_s`` until :meth:`stop`.

    The first pass runs one interval after :meth:`start`. A failing pass is logged and the
    next one runs on time; :meth:`stop` waits for a pass in progress to finish.
    """

    def __init__(self, deps: Deps, *, interval_s: float,
                 reconcile_fn: Reconcile = reconcile) -> None:
        self.deps = deps
        self.interval_s = interval_s
        self._reconcile = reconcile_fn
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="trainbot-reconcile",
                                        daemon=True)

    def start(self) -> ReconcileTimer:
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def __enter__(self) -> ReconcileTimer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def _loop(self) -> None:
        while not self._stopping.wait(self.interval_s):
            try:
                summary = self._reconcile(self.deps)
            except Exception:
                log.exception("the reconcile pass failed; the next one runs in %g s",
                              self.interval_s)
                continue
            done = {k: v for k, v in summary.as_dict().items() if v and k != "checked"}
            if done:
                log.info("reconcile: %s", done)
