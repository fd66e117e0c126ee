"""Run a command against the services and present the result.

The one command path: `/train X`, `trainbot X` and every Slack button and form (each builds
the command it stands for) go through :func:`execute`, so they can't drift apart. Slack's
entrypoints only translate payloads into commands and replies into Slack answers.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import assert_never

from bot.commands import (
    Algorithms,
    Approve,
    BudgetList,
    BudgetRemove,
    BudgetSet,
    Command,
    Cost,
    Diff,
    Eval,
    Help,
    Lineage,
    Logs,
    ModelApprove,
    ModelRegister,
    ModelReject,
    Models,
    Pools,
    PresetDelete,
    PresetList,
    PresetSave,
    PresetShow,
    Reject,
    Rerun,
    Show,
    Start,
    StartForm,
    StatusQuery,
    Stop,
    Tb,
    Versions,
)
from bot.commands import Sweep as SweepCommand
from bot.domain import Approval, InvalidInput, JobVersion, NotFound
from bot.domain.cost import BudgetPolicy, BudgetScope
from bot.domain.sweep import Sweep
from bot.services import (
    approvals,
    budgets,
    costs,
    launching,
    models,
    presets,
    queries,
    requests,
    sweeps,
)
from bot.services.context import Deps
from bot.views import presenters
from bot.views.costs import budgets_doc, cost_doc
from bot.views.doc import Button, Doc
from bot.views.models import model_card, models_doc
from bot.views.mrkdwn import code, esc, link, mention
from bot.views.sweeps import sweep_card

__all__ = ["Actor", "Reply", "execute"]


@dataclass(frozen=True)
class Actor:
    user: str
    channel: str | None = None
    request_key: str | None = None
    interactive: bool = False  # Slack: destructive commands answer with a confirm button
    # The OS user at this machine's CLI: may name any local file that user can read.
    trusted: bool = False


@dataclass
class Reply:
    doc: Doc
    version: JobVersion | None = None
    approval: Approval | None = None
    public: bool = False  # the card already went to the channel
    needs_form: bool = False  # `/train start` alone: Slack opens the start modal
    # The result as domain objects, for `trainbot --json` (bot.views.data turns it into JSON).
    data: object | None = None


def execute(deps: Deps, cmd: Command, actor: Actor) -> Reply:
    """Run ``cmd`` as ``actor``. Raises the services' ``TrainbotError``s (refusals, bad
    input, …); turning them into words is the caller's job (one place per entrypoint)."""
    match cmd:
        case Help():
            return Reply(presenters.help_doc(cmd.topic))
        case Algorithms():
            return _algorithms(deps, cmd)
        case Pools():
            return Reply(presenters.pools_doc(deps.catalog),
                         data=list(deps.catalog.pools.values()))
        case StartForm():
            return Reply(presenters.help_doc("start"), needs_form=True)
        case Start():
            return _launched(deps, *requests.start_job(deps, _start_request(cmd, actor)))
        case Rerun():
            return _rerun(deps, cmd, actor)
        case SweepCommand():
            return _sweep(deps, cmd, actor)
        case Stop():
            return _stop(deps, cmd, actor)
        case StatusQuery():
            return _status(deps, cmd)
        case Versions():
            return _versions(deps, cmd)
        case Show():
            return _show(deps, cmd.job, cmd.version)
        case Diff():
            d = queries.diff_versions(deps, cmd.job, cmd.a, cmd.b)
            return Reply(presenters.diff_doc(d, objectives=_objectives(deps, [d.a, d.b])),
                         data=d)
        case Lineage():
            lineage = queries.lineage(deps, cmd.job, cmd.version)
            return Reply(presenters.lineage_doc(lineage), data=lineage)
        case Eval():
            return _eval(deps, cmd)
        case Logs():
            return _logs(deps, cmd)
        case Tb():
            return _tb(deps, cmd)
        case PresetList():
            saved = presets.list_presets(deps)
            return Reply(presenters.presets_doc(saved), data=saved)
        case PresetShow():
            p = presets.show_preset(deps, cmd.name)
            return Reply(presenters.preset_doc(p), data=p)
        case PresetDelete():
            return _preset_delete(deps, cmd, actor)
        case PresetSave():
            return _preset_save(deps, cmd, actor)
        case Approve():
            return _decide(deps, cmd.request_id, actor, approve=True)
        case Reject():
            return _decide(deps, cmd.request_id, actor, approve=False, note=cmd.reason or "")
        case ModelRegister():
            return _register_model(deps, cmd, actor)
        case ModelApprove():
            return _decide_model(deps, cmd.group, cmd.number, actor, approve=True,
                                 note=cmd.note or "")
        case ModelReject():
            return _decide_model(deps, cmd.group, cmd.number, actor, approve=False,
                                 note=cmd.reason or "")
        case BudgetList():
            standings = budgets.list_budgets(deps)
            return Reply(budgets_doc(standings), data=standings)
        case BudgetSet():
            set_to = budgets.set_budget(deps, user=actor.user, scope=BudgetScope(cmd.scope),
                                        subject=_subject(cmd.subject, actor),
                                        limit_usd=cmd.limit_usd,
                                        policy=BudgetPolicy(cmd.policy))
            standing = budgets.standing(deps, [set_to], now=deps.clock.now())
            return Reply(budgets_doc(standing), data=standing)
        case BudgetRemove():
            budgets.remove_budget(deps, user=actor.user, scope=BudgetScope(cmd.scope),
                                  subject=_subject(cmd.subject, actor))
            return Reply(Doc(title="Budget removed."))
        case Cost():
            report = costs.cost_report(deps, month=cmd.month, since=cmd.since, by=cmd.by)
            if actor.channel:
                channel = actor.channel
                notify_chart(deps, channel, report)
            return Reply(cost_doc(report), data=report)
        case Models():
            groups = models.list_models(deps, cmd.group)
            return Reply(models_doc(groups, one_group=cmd.group is not None), data=groups)
        case _:
            assert_never(cmd)


def _objectives(deps: Deps, versions: Iterable[JobVersion]) -> dict[str, str]:
    """Algorithm id → its objective metric, for the algorithms ``versions`` ran."""
    specs = {(v.spec.algorithm, v.spec.algorithm_digest): v.spec for v in versions}
    found = (deps.algorithms.find(spec) for spec in specs.values())
    return {a.id: a.objective.metric for a in found if a is not None}


def _algorithms(deps: Deps, c: Algorithms) -> Reply:
    if c.algorithm:
        algorithm = deps.algorithms.get(c.algorithm)
        return Reply(presenters.algorithm_doc(algorithm), data=algorithm)
    offered = deps.algorithms.all()
    return Reply(presenters.algorithms_doc(offered), data=offered)


def _start_request(c: Start, a: Actor) -> requests.LaunchRequest:
    return requests.LaunchRequest(
        user=a.user, algorithm=c.algorithm, preset=c.preset, params=dict(c.params), pool=c.pool,
        data=dict(c.data), job_name=c.job_name, spot=c.spot, max_runtime_s=c.max_runtime_s,
        channel=a.channel, request_key=a.request_key, trusted=a.trusted,
    )


def _rerun(deps: Deps, c: Rerun, a: Actor) -> Reply:
    req = requests.LaunchRequest(
        user=a.user, params=dict(c.params), pool=c.pool, data=dict(c.data), spot=c.spot,
        max_runtime_s=c.max_runtime_s, channel=a.channel, request_key=a.request_key,
        trusted=a.trusted,
    )
    return _launched(deps, *requests.rerun(deps, req, job=c.job, base_number=c.version))


def _launched(deps: Deps, version: JobVersion, approval: Approval | None) -> Reply:
    if approval is not None:
        doc = Doc(title=f":hourglass_flowing_sand: {esc(version.label)} is waiting for approval "
                        f"(request {code(approval.id)}).")
        doc.add(f"An approver can run `/train approve {esc(approval.id)}` or press Approve on "
                "the card.")
        return Reply(doc, version=version, approval=approval, public=True)
    links = queries.links(deps, version)
    algo = deps.algorithms.find(version.spec)
    return Reply(presenters.version_card(version, links, algorithm=algo, now=deps.clock.now()),
                 version=version, public=True)


def _sweep(deps: Deps, c: SweepCommand, a: Actor) -> Reply:
    sweep = sweeps.start_sweep(deps, sweeps.SweepRequest(
        user=a.user, assignments=dict(c.assignments), algorithm=c.algorithm, preset=c.preset,
        from_job=c.from_job, from_version=c.from_version, trials=c.trials,
        parallel=c.parallel, objective=c.objective, strategy=c.strategy, pool=c.pool,
        name=c.name, data=dict(c.data) or None, spot=c.spot, max_runtime_s=c.max_runtime_s,
        channel=a.channel, request_key=a.request_key, trusted=a.trusted))
    return sweep_reply(deps, sweep, public=sweep.message_ts is not None)


def sweep_reply(deps: Deps, sweep: Sweep, *, public: bool = False) -> Reply:
    trials = sweeps.sweep_trials(deps, sweep)
    return Reply(sweep_card(sweep, trials), public=public, data=(sweep, trials))


def _subject(subject: str, actor: Actor) -> str:
    """A budget's ``here``/``me`` as the channel or user the command came from."""
    if subject == "me":
        return actor.user
    if subject == "here":
        if not actor.channel:
            raise InvalidInput("`here` means the Slack channel you type in; from the CLI give "
                               "the channel's id (C…).")
        return actor.channel
    return subject


def notify_chart(deps: Deps, channel: str, report: costs.CostReport) -> None:
    """The report's bar chart, posted in the channel it was asked in (best effort)."""
    from bot.services.versions import notify

    notify("cost chart", lambda: deps.chat.cost_chart(channel, report))


def _stop(deps: Deps, c: Stop, a: Actor) -> Reply:
    if c.version is None:
        try:
            sweep = deps.store.get_sweep(c.job)
        except NotFound:
            sweep = None
        if sweep is not None:
            return sweep_reply(deps, sweeps.stop_sweep(deps, user=a.user, name=c.job))
    v = launching.stop_version(deps, user=a.user, job=c.job, number=c.version)
    if v.trial is not None and v.status.terminal:
        sweeps.trial_changed(deps, v)  # stopped before it ran: no event will say so
    return Reply(Doc(title=f"{v.status.emoji} {esc(v.label)}: {v.status.value.lower()}."),
                 version=v)


def _status(deps: Deps, c: StatusQuery) -> Reply:
    if c.job:
        return _show(deps, c.job, None)
    overview = queries.status_overview(deps)
    shown = overview.running + overview.queued + overview.awaiting + overview.failed_recent
    doc = presenters.status_doc(overview, stuck_after=deps.stuck_after,
                                objectives=_objectives(deps, shown))
    return Reply(doc, data=overview)


def _versions(deps: Deps, c: Versions) -> Reply:
    found = queries.list_versions(deps, c.job)
    return Reply(presenters.versions_doc(c.job, found, objectives=_objectives(deps, found)),
                 data=found)


def _show(deps: Deps, job: str, number: int | None) -> Reply:
    if number is None:
        try:
            return sweep_reply(deps, deps.store.get_sweep(job))  # a sweep: its card
        except NotFound:
            pass
    v = queries.get_version(deps, job, number)
    doc = presenters.version_card(v, queries.links(deps, v),
                                  algorithm=deps.algorithms.find(v.spec), now=deps.clock.now())
    if v.approval_id:
        ap = deps.store.get_approval(v.approval_id)
        trail = f"asked by {mention(ap.requested_by)} {ap.requested_at:%Y-%m-%d %H:%M}"
        if ap.decision:
            trail += (f"; {ap.decision} by {mention(ap.decided_by)} "
                      f"{ap.decided_at:%Y-%m-%d %H:%M}")
            trail += f" — {esc(ap.decision_note)}" if ap.decision_note else ""
        doc.add(f"*Approval* {code(ap.id)}: {trail}")
    if v.history:
        doc.add("*History*\n" + "\n".join(
            f"{h.at:%H:%M:%S} {h.status.value}"
            + (f" — {esc(h.message[:120])}" if h.message else "")
            for h in v.history[-12:]))
    return Reply(doc, version=v)


def _eval(deps: Deps, c: Eval) -> Reply:
    """The evaluation, ephemeral; its pictures are in the card's thread (posted once, when
    the version completed), so this links there instead of posting them again."""
    v = queries.get_version(deps, c.job, c.version)
    doc = presenters.eval_doc(v)
    if (v.evaluation or {}).get("confusion_matrix"):
        thread = deps.chat.thread_link(v)
        if thread:
            doc.context.append(
                f"Confusion matrix and curves: {link(thread, 'in the card’s thread')}")
    return Reply(doc, version=v)


def _logs(deps: Deps, c: Logs) -> Reply:
    v = queries.get_version(deps, c.job, c.version)
    lines = queries.logs(deps, v, lines=40)
    return Reply(presenters.logs_doc(v, lines), version=v, data=lines)


def _tb(deps: Deps, c: Tb) -> Reply:
    v = queries.get_version(deps, c.job, c.version)
    found = queries.links(deps, v)
    url = found.tensorboard
    if not url:
        if not v.backend_job_name:
            raise InvalidInput(f"{v.label} hasn't started yet, so it has no TensorBoard.")
        if found.tensorboard_problem:
            raise InvalidInput(f"No TensorBoard link for {v.label}: {found.tensorboard_problem}")
        raise InvalidInput(f"{v.label} has no TensorBoard link: its run's TensorBoard output "
                           "is no longer on this machine.")
    doc = Doc(title=f"TensorBoard for *{esc(v.label)}*: {link(url, 'open')}")
    doc.add(esc(url))
    return Reply(doc, version=v, data=url)


def _preset_delete(deps: Deps, c: PresetDelete, a: Actor) -> Reply:
    if a.interactive and not c.confirmed:
        p = presets.show_preset(deps, c.name)
        deps.policy.check_delete_preset(a.user, p)
        doc = Doc(title=f":wastebasket: Delete preset *{esc(p.name)}*?")
        doc.add("Jobs started from it keep their parameters; the name becomes free again.")
        doc.buttons.append(Button("Delete", "delete_preset", p.name, style="danger",
                                  confirm=f"Delete preset {esc(p.name)}? This can't be undone."))
        return Reply(doc)
    p = presets.delete_preset(deps, user=a.user, name=c.name)
    return Reply(Doc(title=f":wastebasket: Preset *{esc(p.name)}* deleted."), data=p)


def _preset_save(deps: Deps, c: PresetSave, a: Actor) -> Reply:
    p = presets.save_preset(
        deps, user=a.user, name=c.name, description=c.description, from_job=c.from_job,
        from_version=c.from_version, algorithm=c.algorithm, params=dict(c.params), pool=c.pool,
        data=dict(c.data),
    )
    doc = presenters.preset_doc(p)
    doc.title = f":bookmark: Saved preset *{esc(p.name)}*"
    return Reply(doc, data=p)


def _decide(deps: Deps, approval_id: str, a: Actor, *, approve: bool, note: str = "") -> Reply:
    if deps.store.get_approval(approval_id).sweep:
        decided, sweep = sweeps.decide_sweep(deps, approval_id=approval_id, user=a.user,
                                             approve=approve, note=note)
        verb = "Approved" if approve else "Rejected"
        reply = sweep_reply(deps, sweep)
        reply.doc = Doc(title=f"{verb} request {code(decided.id)}: {esc(sweep.label)} is "
                              f"{sweep.status.value.lower().replace('_', ' ')}.")
        return reply
    ap, v = approvals.decide(deps, approval_id=approval_id, user=a.user, approve=approve,
                             note=note)
    verb = "Approved" if approve else "Rejected"
    return Reply(Doc(title=f"{verb} request {code(ap.id)}: {esc(v.label)} is "
                           f"{v.status.value.lower()}."), version=v, approval=ap)


def _register_model(deps: Deps, c: ModelRegister, a: Actor) -> Reply:
    done = models.register_model(deps, c.job, c.version, group=c.group, user=a.user,
                                 channel=a.channel)
    m = done.model
    doc = model_card(m)
    doc.buttons.clear()  # the card in the channel has them; this answer only tells
    source = f"{esc(m.job)} v{m.version}"
    if done.created:
        doc.title = (f":package: Registered model *{esc(m.label)}* from training version "
                     f"*{source}* — pending approval.")
    else:
        doc.title = (f":package: Training version *{source}* is already registered in "
                     f"*{esc(m.group)}*: model *{esc(m.label)}* ({esc(m.status.value)}).")
    if m.pending:
        doc.context.insert(0, f"An approver can run `/train model approve {esc(m.group)} "
                              f"v{m.number}` or press Approve on the card.")
    return Reply(doc, data=done)


def _decide_model(deps: Deps, group: str, number: int, a: Actor, *, approve: bool,
                  note: str) -> Reply:
    m = models.decide_model(deps, group, number, user=a.user, approve=approve, note=note)
    verb = "Approved" if approve else "Rejected"
    return Reply(Doc(title=f"{verb} model *{esc(m.label)}* (from {esc(m.job)} v{m.version})."),
                 data=m)
