"""Sweeps: search a version's hyperparameters, every trial a version of the sweep's job.

Two tuners (``deps.tuner``). Locally Optuna proposes each point and trainbot launches the
trials through the compute backend like any version (pool caps, stop, recovery,
TensorBoard); :func:`advance` is the whole driver — it reads the trials off the store,
launches what the sweep still needs, and ends the sweep — and it is called whenever
something happened (start, a trial's end, the reconcile, a restart), so a killed bot resumes
where the store says and never repeats a trial: trial ``n``'s version is created under a
request key of its own (:func:`~bot.domain.sweep.trial_request_key`).

On AWS SageMaker automatic model tuning runs the trials; their training-job events create
their versions (:func:`adopt_trial`) and the tuning job's events end the sweep
(:func:`record_tuning_change`).
"""

from __future__ import annotations

import contextlib
import logging
import secrets
from dataclasses import dataclass

from bot.domain import (
    Approval,
    BackendError,
    Conflict,
    Decision,
    InvalidInput,
    JobSpec,
    JobVersion,
    NotAllowed,
    NotFound,
    ResourcePool,
    StaleWrite,
    Status,
    StatusChange,
    TrainingJob,
)
from bot.domain.algorithm import Algorithm
from bot.domain.job import validate_job_name
from bot.domain.naming import tuning_job_name
from bot.domain.sweep import (
    Sweep,
    SweepStatus,
    Trial,
    counts,
    trial_request_key,
)
from bot.domain.sweep_space import build_sweep_spec
from bot.ports import Tuner
from bot.services.approvals import check_can_decide
from bot.services.budgets import check_budgets
from bot.services.context import Deps
from bot.services.launching import launch_version, stop_version
from bot.services.requests import build_spec
from bot.services.sweep_records import (
    any_value,
    deliver,
    end_sweep,
    mutate_sweep,
    post_card,
    sweep_trials,
    tell_best,
)
from bot.services.versions import (
    mutate_version,
    notify,
)

__all__ = [
    "SweepRequest",
    "advance",
    "decide_sweep",
    "resume_sweeps",
    "start_sweep",
    "stop_sweep",
    "sweep_trials",
    "trial_changed",
    "trial_progressed",
]

log = logging.getLogger("trainbot")
DEFAULT_TRIALS = 10
# Steps one fill may take: a trial each (at most MAX_PARALLEL run at once), races retried.
_FILL_STEPS = 64


@dataclass(frozen=True)
class SweepRequest:
    """What a user asked for with ``/train sweep`` (words, before validation)."""

    user: str
    assignments: dict[str, str]
    algorithm: str | None = None
    preset: str | None = None
    from_job: str | None = None
    from_version: int | None = None
    trials: int = DEFAULT_TRIALS
    parallel: int = 1
    objective: str | None = None
    strategy: str = "bayesian"
    pool: str | None = None
    name: str | None = None
    data: dict[str, str] | None = None
    spot: bool | None = None
    max_runtime_s: int | None = None
    channel: str | None = None
    request_key: str | None = None
    trusted: bool = False


def _tuner(deps: Deps) -> Tuner:
    if deps.tuner is None:
        raise InvalidInput("Sweeps aren't available on this trainbot.",
                           hint="Run the trials one by one with `/train rerun`.")
    return deps.tuner


def start_sweep(deps: Deps, req: SweepRequest) -> Sweep:
    """Check the request, create the sweep and its job, post its card, and begin (or ask for
    approval of the whole sweep first: its estimate is trials × one trial's ceiling)."""
    tuner = _tuner(deps)
    deps.policy.check_channel(req.channel)
    base: JobSpec | None = None
    origin = ""
    if req.preset:
        base = deps.store.get_preset(deps.scope, req.preset).spec
        if base.algorithm_digest is not None:
            deps.algorithms.get(base.algorithm)  # a removed algorithm starts nothing new
        algorithm = deps.algorithms.for_spec(base)
        origin = f"preset {req.preset}"
    elif req.from_job:
        job = deps.store.get_job(req.from_job)
        version = deps.store.get_version(req.from_job, req.from_version or job.latest_version)
        if version.status in (Status.AWAITING_APPROVAL, Status.REJECTED):
            raise InvalidInput(f"{version.label} never ran; sweep from a version that did.")
        base = version.spec
        algorithm = deps.algorithms.for_spec(base)
        origin = version.label
    elif req.algorithm:
        algorithm = deps.algorithms.get(req.algorithm)
    else:
        raise InvalidInput("Say what to sweep: an algorithm, `--preset NAME` or `--from JOB`.",
                           hint="e.g. `/train sweep tabular-classification "
                                "learning_rate=0.01..0.5:log --trials 8`")
    pool = deps.catalog.pool(req.pool or (base.pool if base else deps.catalog.default_pool))
    deps.policy.check_launch(req.user, pool)
    if pool.max_concurrent is not None and req.parallel > pool.max_concurrent:
        raise InvalidInput(
            f"`--parallel {req.parallel}` is more than pool `{pool.id}` runs at once "
            f"({pool.max_concurrent}).",
            hint=f"Use `--parallel {pool.max_concurrent}` or less, or another pool.")
    shared = build_spec(deps, algorithm, params={}, pool=pool, data=req.data or {}, base=base,
                        spot=req.spot, max_runtime_s=req.max_runtime_s, preset=req.preset,
                        trusted=req.trusted, user=req.user, channel=req.channel)
    spec = build_sweep_spec(algorithm, req.assignments, trials=req.trials,
                            parallel=req.parallel, pool=pool.id, objective=req.objective,
                            strategy=req.strategy, max_runtime_s=shared.max_runtime_s,
                            base=shared)
    name = validate_job_name(req.name) if req.name else _new_name(algorithm.id)
    now = deps.clock.now()
    if tuner.launches_trials:
        # The backend runs `parallel` trials at once, holding no place of trainbot's caps:
        # the request itself must stay within them.
        caps = deps.policy.caps_of(req.user, req.channel, pool)
        if caps and req.parallel > min(caps.values()):
            raise InvalidInput(
                f"`--parallel {req.parallel}` is more than you may run at once "
                f"({min(caps.values())}, the active-version caps).",
                hint=f"Use `--parallel {min(caps.values())}` or less.")
    # The whole sweep against the budgets: every trial's ceiling, before any launches.
    trial_ceiling = pool.estimate_cost(spec.max_runtime_s, spot=spec.spot)
    over = check_budgets(deps, user=req.user, channel=req.channel,
                         estimate_usd=spec.trials * trial_ceiling)
    awaiting = deps.policy.needs_approval(pool, rerun=bool(req.from_job)) or over is not None
    sweep = Sweep(name=name, spec=spec, requested_by=req.user,
                  status=SweepStatus.AWAITING_APPROVAL if awaiting else SweepStatus.RUNNING,
                  approval_id=secrets.token_hex(4) if awaiting else None,
                  created_at=now, updated_at=now, origin=origin, backend=tuner.name,
                  request_key=req.request_key, channel=req.channel,
                  estimated_cost_usd=round(spec.trials * trial_ceiling, 2))
    job = TrainingJob(name=name, owner=req.user, channel=req.channel, created_at=now)
    try:
        stored, created = deps.store.create_sweep(sweep, job=job)
    except Conflict:
        raise Conflict(f"A job named `{name}` already exists.",
                       hint="Pick another `--name`.") from None
    if not created:
        return stored  # a retried delivery: the first one did the work
    if stored.status is SweepStatus.AWAITING_APPROVAL:
        return _request_approval(deps, stored, pool, rerun=bool(req.from_job),
                                 over_budget=over.reason if over else None)
    stored = post_card(deps, stored)
    return begin(deps, stored, algorithm)


# --- approval of a whole sweep ------------------------------------------------------------------


def _request_approval(deps: Deps, sweep: Sweep, pool: ResourcePool, *, rerun: bool,
                      over_budget: str | None = None) -> Sweep:
    """Record the request (for every trial at once) and post the sweep's card, which carries
    Approve/Reject while it waits (the card is the request's card)."""
    assert sweep.approval_id is not None
    why = f"pool `{pool.id}` requires approval" if pool.requires_approval else (
        "reruns need approval" if rerun and deps.policy.needs_approval(pool, rerun=True)
        else "")
    why = "; ".join(w for w in (why, over_budget) if w) or "launch needs approval"
    ceiling = (f"; ceiling ${sweep.estimated_cost_usd:,.2f} for {sweep.spec.trials} trials"
               if sweep.estimated_cost_usd else "")
    now = deps.clock.now()
    try:
        approval = deps.store.create_approval(Approval(
            id=sweep.approval_id, job=sweep.name, version=0, sweep=True, pool=pool.id,
            reason=f"{why}{ceiling}", requested_by=sweep.requested_by, requested_at=now,
            expires_at=deps.policy.approval_deadline(now), channel=sweep.channel))
    except Conflict:
        approval = deps.store.get_approval(sweep.approval_id)
    sweep = post_card(deps, sweep)
    if sweep.message_ts and sweep.channel and approval.message_ts is None:
        deps.store.set_approval_message(approval.id, channel=sweep.channel,
                                        ts=sweep.message_ts)
    return sweep


def decide_sweep(deps: Deps, *, approval_id: str, user: str, approve: bool,
                 note: str = "") -> tuple[Approval, Sweep]:
    """An approver's decision on a whole sweep, taken once: approved, the search begins;
    rejected, the sweep ends REJECTED (told in the channel). A second decision is a
    Conflict naming who decided; an expired request says how to ask again."""
    approval = check_can_decide(deps, approval_id=approval_id, user=user)
    sweep = deps.store.get_sweep(approval.job)
    if sweep.status is not SweepStatus.AWAITING_APPROVAL:
        raise InvalidInput(f"Request `{approval.id}` can't be decided: {sweep.label} is no "
                           f"longer awaiting approval (it is {sweep.status.value.lower()}).")
    now = deps.clock.now()
    if approval.expired(now):
        _settle(deps, sweep, _decided(deps, approval, Decision.EXPIRED, "trainbot", "expired"))
        raise InvalidInput(f"Request `{approval.id}` expired at "
                           f"{approval.expires_at:%Y-%m-%d %H:%M} UTC.",
                           hint="Ask again by starting the sweep anew (`/train sweep …`).")
    decision = Decision.APPROVED if approve else Decision.REJECTED
    decided = _decided(deps, approval, decision, user, note)
    return decided, _settle(deps, sweep, decided)


def _decided(deps: Deps, approval: Approval, decision: Decision, by: str,
             note: str) -> Approval:
    try:
        return deps.store.decide_approval(approval.id, decision, by=by, at=deps.clock.now(),
                                          note=note)
    except Conflict:
        current = deps.store.get_approval(approval.id)
        who = "trainbot (it expired)" if current.decision is Decision.EXPIRED else (
            f"<@{current.decided_by}>")
        raise Conflict(f"Request `{approval.id}` was already {current.decision} by {who}.") \
            from None


def _settle(deps: Deps, sweep: Sweep, approval: Approval) -> Sweep:
    """Move a sweep AWAITING_APPROVAL as its decided request says (also what repairs a crash
    between the two writes: the reconcile calls it through :func:`advance`)."""
    assert approval.decision is not None
    now = deps.clock.now()
    by = approval.decided_by or "trainbot"
    if approval.decision is Decision.APPROVED:
        moved = mutate_sweep(deps, sweep.name, lambda s: s.transition(SweepStatus.RUNNING, at=now)
                        .model_copy(update={"approved_by": by})
                        if s.status is SweepStatus.AWAITING_APPROVAL else s)
        if moved.status is SweepStatus.RUNNING and moved.approved_by == by and \
                sweep.status is SweepStatus.AWAITING_APPROVAL:
            return begin(deps, moved, deps.algorithms.for_spec(
                moved.spec.trial_spec({r.name: any_value(r) for r in moved.spec.ranges})))
        return moved
    reason = {Decision.EXPIRED: "the approval request expired",
              Decision.WITHDRAWN: f"withdrawn by {by}"}.get(
        approval.decision, f"rejected by {by}" + (
            f": {approval.decision_note}" if approval.decision_note else ""))
    return end_sweep(deps, sweep.name, SweepStatus.REJECTED, reason=reason)


def _settle_approval(deps: Deps, sweep: Sweep) -> Sweep:
    """A sweep still awaiting approval: apply a decision its request already has, or expire
    a request past its deadline (the reconcile's pass)."""
    if sweep.approval_id is None:
        return sweep
    try:
        approval = deps.store.get_approval(sweep.approval_id)
    except NotFound:
        pool = deps.catalog.pool(sweep.spec.pool)
        return _request_approval(deps, sweep, pool, rerun=bool(sweep.origin))
    if approval.decision is None and approval.expired(deps.clock.now()):
        try:
            approval = _decided(deps, approval, Decision.EXPIRED, "trainbot", "expired")
        except Conflict:
            approval = deps.store.get_approval(approval.id)
    if approval.decision is None:
        return sweep
    return _settle(deps, sweep, approval)


def begin(deps: Deps, sweep: Sweep, algorithm: Algorithm) -> Sweep:
    """Start the search: a backend tuning job (its name recorded first, so its events find
    the sweep), or the first trials."""
    tuner = _tuner(deps)
    if not tuner.launches_trials:
        return advance(deps, sweep.name)
    name = tuning_job_name(deps.job_prefix, sweep.name, secrets.token_hex(2))
    recorded = mutate_sweep(deps, sweep.name, lambda s: s if s.backend_name else
                            s.model_copy(update={"backend_name": name}))
    if recorded.backend_name != name:
        return recorded  # another delivery began it
    try:
        tuner.begin(recorded, algorithm, deps.catalog.pool(recorded.spec.pool), name)
    except BackendError as exc:
        reason = f"the search could not start: {exc.message}"
        return end_sweep(deps, sweep.name, SweepStatus.FAILED, reason=reason)
    return recorded


def advance(deps: Deps, name: str, *, repair: bool = False) -> Sweep:
    """Move a sweep on from what the store holds: launch the trials it still needs (local
    tuner), see a stop through, end it when nothing is left to run, update its card, tell
    what must be told. Safe to call any number of times, from anywhere, concurrently.
    ``repair`` (the reconcile, a restart): also ask again for stops the backend may not
    have taken."""
    sweep = deps.store.get_sweep(name)
    if sweep.status is SweepStatus.AWAITING_APPROVAL:
        return _settle_approval(deps, sweep)
    tuner = deps.tuner
    local = tuner is not None and not tuner.launches_trials
    if sweep.status is SweepStatus.RUNNING and tuner is not None and local:
        _fill(deps, tuner, name)
    sweep = deps.store.get_sweep(name)
    if sweep.status is SweepStatus.STOPPING and local:
        _stop_trials(deps, name, again=repair)  # a stop cut short (a crash) is finished
    trials = sweep_trials(deps, sweep)
    if not sweep.status.terminal and local:
        c = counts(trials)
        stopping = sweep.status is SweepStatus.STOPPING
        if c.running == 0 and (stopping or c.total >= sweep.spec.trials):
            target = SweepStatus.STOPPED if stopping else (
                SweepStatus.COMPLETED if c.done else SweepStatus.FAILED)
            reason = None if c.done or stopping else "no trial completed"
            return end_sweep(deps, name, target, reason=reason, trials=trials)
    tell_best(deps, sweep, trials)
    notify("sweep card", lambda: deps.chat.sweep_changed(sweep, trials))
    return deliver(deps, sweep, trials)


def _fill(deps: Deps, tuner: Tuner, name: str) -> None:
    """Create and launch trials until ``parallel`` run or all were created. Each trial is
    reserved first (``next_trial``, a write that needs the sweep RUNNING), and a trial
    created after a stop landed is stopped before it launches."""
    for _ in range(_FILL_STEPS):
        sweep = deps.store.get_sweep(name)
        trials = sweep_trials(deps, sweep)
        number = len(trials)
        if sweep.status is not SweepStatus.RUNNING or number >= sweep.spec.trials or \
                counts(trials).running >= sweep.spec.parallel:
            return
        if sweep.next_trial <= number:
            try:
                sweep = deps.store.save_sweep(
                    sweep.model_copy(update={"next_trial": number + 1}))
            except StaleWrite:
                continue  # the sweep moved (a stop, another filler): look again
        version = _create_trial(deps, tuner, sweep, trials)
        if version.status is not Status.QUEUED or version.backend_job_name:
            continue  # launched by whoever created it
        if deps.store.get_sweep(name).status is not SweepStatus.RUNNING:
            with contextlib.suppress(InvalidInput):  # stopped meanwhile: it never runs
                stop_version(deps, user=sweep.requested_by, job=name, number=version.number)
            return
        try:
            launch_version(deps, version)
        except BackendError as exc:  # recorded FAILED on the version; the next one comes
            log.warning("trial %s of %s failed to launch: %s", version.trial, name,
                        exc.message)


def _create_trial(deps: Deps, tuner: Tuner, sweep: Sweep, trials: list[Trial]) -> JobVersion:
    """Trial ``len(trials)``'s version, created once (its own request key): the tuner's
    next point for this history, the same point whoever asks."""
    number = len(trials)
    params = tuner.suggest(sweep, trials)
    now = deps.clock.now()
    pool = deps.catalog.pool(sweep.spec.pool)
    draft = JobVersion(
        job=sweep.name, number=0, parent=None, spec=sweep.spec.trial_spec(params),
        requested_by=sweep.requested_by, approved_by=sweep.approved_by,
        status=Status.QUEUED, trial=number,
        history=[StatusChange(status=Status.QUEUED, at=now,
                              message=f"trial {number} of sweep {sweep.name}")],
        created_at=now, updated_at=now, request_key=trial_request_key(sweep.name, number),
        channel=sweep.channel,  # charged and capped as the sweep's channel; no card of its own
        estimated_cost_usd=pool.estimate_cost(sweep.spec.max_runtime_s),
        estimated_spot_cost_usd=(pool.estimate_cost(sweep.spec.max_runtime_s, spot=True)
                                 if sweep.spec.spot else None))
    version, _ = deps.store.add_version(draft)
    return version


def _stop_trials(deps: Deps, name: str, *, again: bool = False) -> list[str]:
    """Stop every trial still going (``again``: ask the backend again for those already
    stopping — a stop it may not have taken). Returns what couldn't be stopped (each is
    tried: one failure doesn't keep the others running)."""
    failed = []
    for version in deps.store.list_versions(name):
        if version.trial is None or version.status.terminal:
            continue
        try:
            if version.status is Status.STOPPING:
                if again and version.backend_job_name:
                    deps.compute.stop(version)  # idempotent: asked again
            else:
                stop_version(deps, user=version.requested_by, job=name,
                             number=version.number)
        except InvalidInput:
            continue  # it ended meanwhile
        except BackendError as exc:
            log.warning("could not stop %s: %s", version.label, exc.message)
            failed.append(version.label)
    return failed


def trial_changed(deps: Deps, version: JobVersion) -> None:
    """A trial's version moved: the sweep goes on (its card, a new best, the next trials).
    A trial the backend's search stopped by itself (SageMaker's early stopping, not a stop
    anyone asked for) is marked pruned."""
    if version.trial is None:
        return
    try:
        sweep = deps.store.get_sweep(version.job)
    except NotFound:
        log.warning("trial %s has no sweep record", version.label)
        return
    if (version.status is Status.STOPPED and not version.pruned and deps.tuner is not None
            and deps.tuner.launches_trials and sweep.status is SweepStatus.RUNNING
            and not any(h.status is Status.STOPPING and "requested by" in h.message
                        for h in version.history)):
        mutate_version(deps.store, version.job, version.number,
                       lambda v: v.model_copy(update={"pruned": True}))
    advance(deps, version.job)


def trial_progressed(deps: Deps, version: JobVersion) -> None:
    """A running trial printed more of its objective: stop it if the search says it can't
    catch up (local tuner only; SageMaker stops its own trials)."""
    tuner = deps.tuner
    if version.trial is None or tuner is None or tuner.launches_trials or \
            version.status.terminal or version.status is Status.STOPPING or version.pruned:
        return
    sweep = deps.store.get_sweep(version.job)
    if sweep.status is not SweepStatus.RUNNING:
        return
    algorithm = deps.algorithms.find(version.spec)
    if algorithm is None:
        return
    series = deps.compute.results(version, algorithm).series.get(sweep.spec.objective_metric)
    if series is None or not series.points:
        return
    trials = sweep_trials(deps, sweep)
    current = next((t for t in trials if t.number == version.trial), None)
    if current is None:
        return
    judged = current.model_copy(update={"intermediate": list(series.points)})
    if not tuner.should_prune(sweep, trials, judged):
        return
    step, value = series.points[-1]
    message = (f"pruned at step {step}: {sweep.spec.objective_metric}={value:.4g} can't catch "
               "up with the other trials")
    now = deps.clock.now()
    before, after = mutate_version(
        deps.store, version.job, version.number,
        lambda v: v if v.status.terminal or v.status is Status.STOPPING or v.pruned else
        v.transition(Status.STOPPING, at=now, message=message).model_copy(
            update={"pruned": True}))
    if after.pruned and not before.pruned and after.backend_job_name:
        try:
            deps.compute.stop(after)
        except BackendError as exc:
            log.warning("could not stop pruned %s: %s", after.label, exc.message)


def stop_sweep(deps: Deps, *, user: str, name: str) -> Sweep:
    """Stop the search and every trial still running; the sweep ends STOPPED once they
    have (its best so far stays)."""
    sweep = deps.store.get_sweep(name)
    if user != sweep.requested_by and not deps.policy.is_approver(user):
        raise NotAllowed(f"Only <@{sweep.requested_by}> (who started {sweep.label}), an "
                         "approver or an admin can stop it.")
    if sweep.status.terminal:
        raise InvalidInput(f"{sweep.label} already ended ({sweep.status.value.lower()}).")
    if sweep.status is SweepStatus.AWAITING_APPROVAL and sweep.approval_id:
        # The requester takes the request back: nobody may approve it afterwards.
        approval = deps.store.get_approval(sweep.approval_id)
        if approval.pending:
            try:
                approval = deps.store.decide_approval(
                    approval.id, Decision.WITHDRAWN, by=user, at=deps.clock.now())
            except Conflict:
                approval = deps.store.get_approval(approval.id)
        return _settle(deps, sweep, approval)
    now = deps.clock.now()
    stopping = mutate_sweep(deps, name, lambda s: s.transition(SweepStatus.STOPPING, at=now)
                       .model_copy(update={"stopped_by": s.stopped_by or user}))
    tuner = _tuner(deps)
    if tuner.launches_trials:
        try:
            tuner.stop(stopping)
        except BackendError as exc:
            raise BackendError(f"Couldn't stop {sweep.label}: {exc.message}") from exc
        notify("sweep card", lambda: deps.chat.sweep_changed(
            stopping, sweep_trials(deps, stopping)))
        return stopping
    failed = _stop_trials(deps, name)
    if failed:
        log.warning("%s: %s not stopped yet; asked again as the sweep goes on", name,
                    ", ".join(failed))
    return advance(deps, name)


def resume_sweeps(deps: Deps) -> list[Sweep]:
    """Take up every sweep the store says is going (a restart, or the reconcile's tick)."""
    out = []
    for sweep in deps.store.list_active_sweeps():
        try:
            out.append(advance(deps, sweep.name, repair=True))
        except Exception:
            log.exception("could not advance %s", sweep.label)
    return out


def _new_name(algorithm_id: str) -> str:
    stem = algorithm_id[:24].rstrip("-")
    return f"{stem}-sweep-{secrets.token_hex(3)}"
