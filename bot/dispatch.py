"""Run a parsed command against the services and present the result.

Shared by the CLI and the Slack listeners, so `/train X` and `trainbot X` behave the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from bot.commands import Command
from bot.domain import Approval, InvalidInput, JobVersion
from bot.services import approvals, launching, presets, queries, requests
from bot.services.context import Deps
from bot.views import presenters
from bot.views.doc import Button, Doc
from bot.views.mrkdwn import code, esc, link, mention

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


def execute(deps: Deps, cmd: Command, actor: Actor, *, stuck_after: timedelta) -> Reply:
    handler = _HANDLERS[cmd.name]
    return handler(deps, cmd, actor, stuck_after)


def _help(deps: Deps, c: Command, a: Actor, _s: timedelta) -> Reply:
    return Reply(presenters.help_doc(c.topic))


def _algorithms(deps: Deps, c: Command, a: Actor, _s: timedelta) -> Reply:
    doc = presenters.algorithms_doc(deps.catalog, c.algorithm)
    if c.algorithm:
        return Reply(doc, data=deps.catalog.algorithm(c.algorithm))
    return Reply(doc, data=list(deps.catalog.algorithms.values()))


def _pools(deps: Deps, c: Command, a: Actor, _s: timedelta) -> Reply:
    return Reply(presenters.pools_doc(deps.catalog), data=list(deps.catalog.pools.values()))


def _request(c: Command, a: Actor) -> requests.LaunchRequest:
    return requests.LaunchRequest(
        user=a.user, algorithm=c.algorithm, preset=c.preset, params=dict(c.params), pool=c.pool,
        data=dict(c.data), job_name=c.job_name, spot=c.spot, max_runtime_s=c.max_runtime_s,
        channel=a.channel, request_key=a.request_key, trusted=a.trusted,
    )


def _launched(deps: Deps, version: JobVersion, approval: Approval | None) -> Reply:
    if approval is not None:
        doc = Doc(title=f":hourglass_flowing_sand: {esc(version.label)} is waiting for approval "
                        f"(request {code(approval.id)}).")
        doc.add(f"An approver can run `/train approve {esc(approval.id)}` or press Approve on "
                "the card.")
        return Reply(doc, version=version, approval=approval, public=True)
    links = queries.links(deps, version)
    algo = deps.catalog.algorithms.get(version.spec.algorithm)
    return Reply(presenters.version_card(version, links, algorithm=algo, now=deps.clock.now()),
                 version=version, public=True)


def _start(deps: Deps, c: Command, a: Actor, _s: timedelta) -> Reply:
    if not c.algorithm and not c.preset:
        doc = presenters.help_doc("start")
        return Reply(doc, needs_form=True)
    version, approval = requests.start_job(deps, _request(c, a))
    return _launched(deps, version, approval)


def _rerun(deps: Deps, c: Command, a: Actor, _s: timedelta) -> Reply:
    version, approval = requests.rerun(deps, _request(c, a), job=c.job or "",
                                        base_number=c.version)
    return _launched(deps, version, approval)


def _stop(deps: Deps, c: Command, a: Actor, _s: timedelta) -> Reply:
    v = launching.stop_version(deps, user=a.user, job=c.job or "", number=c.version)
    return Reply(Doc(title=f"{v.status.emoji} {esc(v.label)}: {v.status.value.lower()}."),
                 version=v)


def _status(deps: Deps, c: Command, a: Actor, stuck_after: timedelta) -> Reply:
    if c.job:
        return _show(deps, c, a, stuck_after)
    overview = queries.status_overview(deps, stuck_after=stuck_after)
    return Reply(presenters.status_doc(overview, stuck_after=stuck_after), data=overview)


def _versions(deps: Deps, c: Command, a: Actor, _s: timedelta) -> Reply:
    job = c.job or ""
    found = queries.list_versions(deps, job)
    objectives = {a.id: a.objective.metric for a in deps.catalog.algorithms.values()}
    return Reply(presenters.versions_doc(job, found, objectives=objectives), data=found)


def _show(deps: Deps, c: Command, a: Actor, _s: timedelta) -> Reply:
    v = queries.get_version(deps, c.job or "", c.version)
    doc = presenters.version_card(v, queries.links(deps, v),
                                  algorithm=deps.catalog.algorithms.get(v.spec.algorithm),
                                  now=deps.clock.now())
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


def _diff(deps: Deps, c: Command, a: Actor, _s: timedelta) -> Reply:
    d = queries.diff_versions(deps, c.job or "", c.version or 0, c.other_version or 0)
    return Reply(presenters.diff_doc(d), data=d)


def _lineage(deps: Deps, c: Command, a: Actor, _s: timedelta) -> Reply:
    found = queries.lineage(deps, c.job or "", c.version)
    return Reply(presenters.lineage_doc(found), data=found)


def _eval(deps: Deps, c: Command, a: Actor, _s: timedelta) -> Reply:
    v = queries.get_version(deps, c.job or "", c.version)
    return Reply(presenters.eval_doc(v), version=v)


def _logs(deps: Deps, c: Command, a: Actor, _s: timedelta) -> Reply:
    v = queries.get_version(deps, c.job or "", c.version)
    lines = queries.logs(deps, v, lines=40)
    return Reply(presenters.logs_doc(v, lines), version=v, data=lines)


def _tb(deps: Deps, c: Command, a: Actor, _s: timedelta) -> Reply:
    v = queries.get_version(deps, c.job or "", c.version)
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


def _preset(deps: Deps, c: Command, a: Actor, _s: timedelta) -> Reply:
    if c.sub == "list":
        found = presets.list_presets(deps)
        return Reply(presenters.presets_doc(found), data=found)
    if c.sub == "show":
        p = presets.show_preset(deps, c.preset or "")
        return Reply(presenters.preset_doc(p), data=p)
    if c.sub == "delete" and a.interactive:
        p = presets.show_preset(deps, c.preset or "")
        deps.policy.check_delete_preset(a.user, p)
        doc = Doc(title=f":wastebasket: Delete preset *{esc(p.name)}*?")
        doc.add("Jobs started from it keep their parameters; the name becomes free again.")
        doc.buttons.append(Button("Delete", "delete_preset", p.name, style="danger",
                                  confirm=f"Delete preset {esc(p.name)}? This can't be undone."))
        return Reply(doc)
    if c.sub == "delete":
        p = presets.delete_preset(deps, user=a.user, name=c.preset or "")
        return Reply(Doc(title=f":wastebasket: Preset *{esc(p.name)}* deleted."), data=p)
    p = presets.save_preset(
        deps, user=a.user, name=c.preset or "", description=c.description, from_job=c.job,
        from_version=c.version, algorithm=c.algorithm, params=dict(c.params), pool=c.pool,
        data=dict(c.data),
    )
    doc = presenters.preset_doc(p)
    doc.title = f":bookmark: Saved preset *{esc(p.name)}*"
    return Reply(doc, data=p)


def _decide(approve: bool):  # type: ignore[no-untyped-def]
    def run(deps: Deps, c: Command, a: Actor, _s: timedelta) -> Reply:
        ap, v = approvals.decide(deps, approval_id=c.request_id or "", user=a.user,
                                 approve=approve, note=c.reason or "")
        verb = "Approved" if approve else "Rejected"
        return Reply(Doc(title=f"{verb} request {code(ap.id)}: {esc(v.label)} is "
                               f"{v.status.value.lower()}."), version=v, approval=ap)

    return run


_HANDLERS = {
    "help": _help, "algorithms": _algorithms, "pools": _pools, "start": _start,
    "rerun": _rerun, "stop": _stop, "status": _status, "versions": _versions, "show": _show,
    "diff": _diff, "lineage": _lineage, "eval": _eval, "logs": _logs, "tb": _tb,
    "preset": _preset, "approve": _decide(True), "reject": _decide(False),
}
