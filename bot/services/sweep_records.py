"""A sweep's record, its card and what its channel hears: compare-and-set writes, the end
(told once, through an outbox with a lease), the new best (told once), the card's place."""

from __future__ import annotations

from collections.abc import Callable

from bot.domain import StaleWrite
from bot.domain.algorithm import HPValue
from bot.domain.sweep import ENDED, Sweep, SweepStatus, Trial, best, trials_of
from bot.domain.sweep_space import Choices, ParamRange
from bot.services.context import Deps
from bot.services.versions import MAX_ATTEMPTS, claimed, new_lease, notify, settled, try_chat

__all__ = ["any_value", "deliver", "end_sweep", "mutate_sweep", "post_card", "sweep_trials",
           "tell_best"]


def sweep_trials(deps: Deps, sweep: Sweep) -> list[Trial]:
    return trials_of(sweep.spec, deps.store.list_versions(sweep.name))


def any_value(r: ParamRange) -> HPValue:
    """A value inside ``r`` (to build a spec that names the algorithm)."""
    return r.values[0] if isinstance(r, Choices) else r.low



def mutate_sweep(deps: Deps, name: str, change: Callable[[Sweep], Sweep]) -> Sweep:
    for _ in range(MAX_ATTEMPTS):
        current = deps.store.get_sweep(name)
        updated = change(current)
        if updated == current:
            return current
        try:
            return deps.store.save_sweep(updated)
        except StaleWrite:
            continue
    raise StaleWrite(f"sweep {name} kept changing; try again.")


def end_sweep(deps: Deps, name: str, target: SweepStatus, *, reason: str | None = None,
         trials: list[Trial] | None = None) -> Sweep:
    now = deps.clock.now()

    def ended(s: Sweep) -> Sweep:
        moved = s.transition(target, at=now)
        if moved is not s and reason:
            moved = moved.model_copy(update={"failure_reason": reason[:1000]})
        return moved

    sweep = mutate_sweep(deps, name, ended)
    trials = trials if trials is not None else sweep_trials(deps, sweep)
    notify("sweep card", lambda: deps.chat.sweep_changed(sweep, trials))
    return deliver(deps, sweep, trials)


def tell_best(deps: Deps, sweep: Sweep, trials: list[Trial]) -> None:
    """Say a new best once: the record claims it (compare-and-set) before the thread hears."""
    top = best(sweep.spec, trials)
    if top is None or top.number == sweep.best_told or sweep.status.terminal:
        return
    try:
        deps.store.save_sweep(sweep.model_copy(update={"best_told": top.number}))
    except StaleWrite:
        return  # someone else moved the sweep; they (or the next call) tell it
    notify("new best", lambda: deps.chat.sweep_new_best(sweep, top))


def deliver(deps: Deps, sweep: Sweep, trials: list[Trial]) -> Sweep:
    """Tell the channel what the sweep's outbox holds (its end) once, however many callers
    try at once: claimed first with a lease (compare-and-set), removed once the chat took
    it, handed back for the reconcile when it didn't; a crashed claim expires."""
    if not sweep.outbox or not sweep.status.terminal:
        return sweep
    now = deps.clock.now()
    lease = new_lease(ENDED, now)
    held = mutate_sweep(deps, sweep.name, lambda s: s.model_copy(
        update={"outbox": claimed(s.outbox, ENDED, lease, now)}))
    if lease not in held.outbox:
        return held
    _, error = try_chat("sweep end", lambda: deps.chat.sweep_ended(held, trials))
    return mutate_sweep(deps, sweep.name, lambda s: s.model_copy(
        update={"outbox": settled(s.outbox, lease, ENDED, told=error is None)}))


def post_card(deps: Deps, sweep: Sweep) -> Sweep:
    ref, error = try_chat("sweep card", lambda: deps.chat.sweep_created(sweep, []))
    if ref is None and error is None:
        return sweep
    if ref is None:
        return mutate_sweep(deps, sweep.name, lambda s: s.model_copy(update={"card_error": error}))
    channel, ts = ref
    return mutate_sweep(deps, sweep.name, lambda s: s.model_copy(
        update={"channel": channel, "message_ts": ts, "card_error": None}))
