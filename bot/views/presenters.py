"""Presenters: domain objects → :class:`Doc`. Shared by the CLI and Slack."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from bot.catalog import Catalog
from bot.domain import (
    Algorithm,
    AlgorithmSource,
    Approval,
    Decision,
    JobVersion,
    Lineage,
    Preset,
    Status,
)
from bot.ports import Links
from bot.services.queries import StatusOverview, VersionDiff
from bot.views.costs import usd
from bot.views.doc import Button, Doc
from bot.views.help import help_doc
from bot.views.mrkdwn import code, esc, link, mention
from bot.views.sweeps import sweep_line

__all__ = [
    "START_PRESET",
    "algorithm_doc",
    "algorithms_doc",
    "approval_doc",
    "card_buttons",
    "diff_doc",
    "eval_doc",
    "help_doc",
    "lineage_doc",
    "logs_doc",
    "pools_doc",
    "preset_doc",
    "presets_doc",
    "status_doc",
    "version_card",
    "versions_doc",
]

KEY_PARAMS = 8
# How a budget's reason for an approval begins (``bot.services.budgets.OverBudget.reason``).
OVER_BUDGET = "over budget: "
# Each "Start" button of a preset list has its own action_id (Slack refuses two equal ones in
# one block); the app listens for the prefix.
START_PRESET = "start_preset"


def algorithm_doc(a: Algorithm) -> Doc:
    """One algorithm's manifest: what it does, its parameters and data channels; a team's own
    (registered) algorithm also says who registered which version of it."""
    mark = " — custom" if a.source is not None else ""
    doc = Doc(title=f"{esc(a.title)} ({code(a.id)} {esc(a.version)}){mark}")
    fields = [
        ("Framework", esc(f"{a.framework} {a.framework_version}")),
        ("Objective", esc(f"{a.objective.goal} {a.objective.metric}")
         + (f" (defaults reach {a.quality_target})" if a.quality_target is not None else "")),
        ("Pools", esc(", ".join(a.supported_pools))),
        ("Spot / checkpoints", f"{_yes(a.supports_spot)} / {_yes(a.supports_checkpoints)}"),
    ]
    if a.source is not None:
        fields.extend(_registered(a.version, a.source))
    doc.add(esc(a.description) or " ", fields=fields)
    doc.add("*Parameters*\n" + ("\n".join(
        f"• {code(h.name)} = {code(h.default)} — {esc(h.describe_range())}"
        + (f". {esc(h.help)}" if h.help else "")
        for h in a.hyperparameters) or "none"))
    if a.channels:
        doc.add("*Data channels*\n" + "\n".join(
            f"• {code(c.name)}{' (required)' if c.required else ''}: "
            f"{esc(c.description or '')} default {code(c.default or 'none')}"
            for c in a.channels))
    return doc


def algorithms_doc(algorithms: Sequence[Algorithm]) -> Doc:
    """The presets, then the team's own algorithms (marked custom, with owner, version and
    short digest)."""
    doc = Doc(title="Algorithms")
    for a in algorithms:
        fields = [("Objective", esc(a.objective.metric)), ("Framework", esc(a.framework))]
        head = f"*{esc(a.id)}* — {esc(a.title)}"
        if a.source is not None:
            head += " · _custom_"
            fields.extend(_registered(a.version, a.source))
        doc.add(f"{head}\n{esc(_clip(a.description, 200))}", fields=fields)
    if not algorithms:
        doc.add("No algorithms are installed.")
    doc.context.append("`/train algorithms ID` shows the parameters; "
                       "`/train start ID key=value` trains.")
    return doc


def _registered(version: str, src: AlgorithmSource) -> list[tuple[str, str]]:
    """Who registered it, which version (manifest version and short source digest), and
    what runs: a script (source folder) or a container image."""
    what = f"{src.kind}: {esc(src.image)}" if src.kind == "image" and src.image else src.kind
    return [("Owner", mention(src.owner)),
            ("Version", f"{esc(version)} · {code('sha256:' + src.digest[:12])}"),
            ("Kind", what)]


def pools_doc(catalog: Catalog) -> Doc:
    doc = Doc(title="Resource pools")
    for p in catalog.pools.values():
        hw = f"{p.instance_count}× {esc(p.instance_type)}" + (f", {p.total_gpus} GPU" if p.gpu_count
                                                          else ", CPU")
        notes = [n for n, on in (("spot", p.spot_allowed), ("approval", p.requires_approval)) if on]
        if p.max_concurrent:
            notes.append(f"max {p.max_concurrent} at once")
        doc.add(f"*{esc(p.id)}* — {esc(p.description)}", fields=[
            ("Hardware", hw), ("Price", f"${p.hourly_price_usd * p.instance_count:.2f}/h"),
            ("Notes", ", ".join(notes) or "—"),
        ])
    return doc


def version_card(version: JobVersion, links: Links, *, algorithm: Algorithm | None = None,
                 now: datetime | None = None) -> Doc:
    """The version card: updated in place on every change, so every line must hold in the
    state it shows — nothing says it ran before it ran, or runs after it ended."""
    v = version
    parent = f" (from v{v.parent})" if v.parent else ""
    title = (f"{v.status.emoji} *{esc(v.job)} v{v.number}*{parent} — "
             f"{v.status.value.replace('_', ' ')}")
    doc = Doc(title=title)
    who = mention(v.requested_by) + (
        f", approved by {mention(v.approved_by)}" if v.approved_by else "")
    fields = [
        ("Algorithm", f"{code(v.spec.algorithm)} {esc(v.spec.algorithm_version)}"),
        ("Pool", code(v.spec.pool) + (" (spot)" if v.spec.spot else "")),
        ("Requested by", who),
        ("Cost", _cost(v)),
    ]
    if v.spec.preset:
        fields.append(("Preset", code(v.spec.preset)))
    if v.spec.data:
        fields.append(("Data", _data(v.spec.data, v.spec.data_origin)))
    timing = _timing(v, now)
    if timing:
        fields.append(("Time", timing))
    if v.compute_note:
        fields.append(("Compute", esc(_compute_note(v.compute_note))))
    doc.add(_params(v), fields=fields)
    if v.status is Status.QUEUED and v.queue_reason and not v.backend_job_name:
        doc.add(f":hourglass_flowing_sand: Waiting: {esc(_clip(v.queue_reason, 500))}")
    objective = algorithm.objective.metric if algorithm else None
    if v.progress and not v.status.terminal:
        doc.add(_progress(v, objective))
    if v.spot_interruptions:
        doc.add(_spot(v))
    if v.metrics:
        doc.add(_metrics_heading(v.status) + "  " + "  ".join(
            (f"*{esc(k)}={_num(x)}*" if k == objective else f"{esc(k)}={_num(x)}")
            for k, x in _objective_first(v.metrics, objective)))
    if v.status is Status.FAILED or v.status is Status.REJECTED:
        doc.add(f":warning: *Reason:* {esc(_clip(v.failure_reason or 'unknown', 500))}")
        if v.log_tail and v.status is Status.FAILED:
            doc.add(code="\n".join(v.log_tail[-10:]))
    doc.buttons.extend(card_buttons(v, links))
    if v.secondary_status and not v.status.terminal:
        doc.context.append(f"backend: {esc(v.secondary_status)}")
    if v.backend_job_name:
        doc.context.append(f"training job {code(v.backend_job_name)}")
    return doc


def card_buttons(v: JobVersion, links: Links) -> list[Button]:
    ref = f"{v.job}:{v.number}"
    out = []
    # A backend may know a version's TensorBoard URL and log stream from the moment it is
    # launched; until the run begins, both would open on nothing.
    if links.tensorboard and _run_began(v):
        out.append(Button("TensorBoard", "open_tensorboard", ref, url=links.tensorboard))
    out.append(Button("Lineage", "show_lineage", ref))
    if v.backend_job_name and _run_began(v):
        out.append(Button("Logs", "show_logs", ref))
    if v.status.terminal and v.status is not Status.REJECTED:
        out.append(Button("Rerun", "rerun_version", ref))
        out.append(Button("Save as preset", "save_preset", ref))
    if v.status is Status.COMPLETED:
        out.append(Button("Evaluation", "show_eval", ref))
        if v.artifacts.model:
            out.append(Button("Register model", "register_model", ref))
    if not v.status.terminal and v.status not in (Status.AWAITING_APPROVAL, Status.STOPPING):
        ending = ("The run ends and can't be resumed." if _run_began(v)
                  else "It won't run.")
        out.append(Button("Stop", "stop_version", ref, style="danger",
                          confirm=f"Stop {esc(v.label)}? {ending}"))
    return out


def versions_doc(job: str, versions: list[JobVersion], *,
                 objectives: Mapping[str, str] | None = None) -> Doc:
    """``objectives``: algorithm id → its objective metric, shown first for each version."""
    doc = Doc(title=f"Versions of *{esc(job)}*")
    for v in versions:
        ordered = _objective_first(v.metrics, (objectives or {}).get(v.spec.algorithm))
        metric = esc(", ".join(f"{k}={_num(x)}" for k, x in ordered[:2]) or "—")
        parent = f" ← v{v.parent}" if v.parent else ""
        doc.add(f"{v.status.emoji} *v{v.number}*{parent} {v.status.value} · "
                f"{code(v.spec.pool)} · {metric} · {mention(v.requested_by)} · "
                f"{v.created_at:%Y-%m-%d %H:%M}")
    return doc


def diff_doc(d: VersionDiff, *, objectives: Mapping[str, str] | None = None) -> Doc:
    """``objectives``: algorithm id → its objective metric, listed first (by ``d.b``'s
    algorithm, the one the diff judges "better" by)."""
    doc = Doc(title=f"*{esc(d.b.job)}*: v{d.a.number} → v{d.b.number}")
    if d.changes:
        doc.add("*Changes*", fields=[(esc(k), f"{code(a)} → {code(b)}")
                                     for k, (a, b) in d.changes.items()])
    else:
        doc.add("Same parameters, data and pool.")
    if d.metrics:
        objective = (objectives or {}).get(d.b.spec.algorithm)
        rows = []
        for m in sorted(d.metrics, key=lambda m: m.name != objective):  # stable: rest keep order
            arrow = {True: " :arrow_up: better", False: " :arrow_down: worse", None: ""}[m.better]
            delta = f" ({m.b - m.a:+.4g})" if m.a is not None and m.b is not None else ""
            name = esc(m.name) + (" (objective)" if m.name == objective else "")
            rows.append((name, f"{_num(m.a)} → {_num(m.b)}{delta}{arrow}"))
        doc.add("*Metrics*", fields=rows)
    return doc


def lineage_doc(lin: Lineage) -> Doc:
    doc = Doc(title=f"Lineage of *{esc(lin.job)} v{lin.version}*")
    icons = {"data": ":floppy_disk:", "algorithm": ":brain:", "preset": ":bookmark:",
             "version": ":package:", "approval": ":ballot_box_with_check:", "model": ":gift:"}
    steps = []
    for n in lin.nodes:
        steps.append(f"{icons.get(n.kind, '•')} *{esc(n.kind)}* {link(n.link, n.label)}"
                     + (f" — {esc(n.detail)}" if n.detail else ""))
    doc.add("\n      ↓\n".join(steps))
    return doc


def eval_doc(v: JobVersion) -> Doc:
    doc = Doc(title=f"Evaluation of *{esc(v.label)}*")
    ev = v.evaluation
    if not ev:
        doc.add("No evaluation yet" + ("" if v.status.terminal else " — the version is still "
                                      + v.status.value.lower()) + ".")
        return doc
    objective = ev.get("objective") or {}
    if objective:
        doc.add(f"*{esc(objective.get('metric'))}* = *{esc(_num(objective.get('value')))}*")
    metrics = ev.get("metrics") or {}
    if metrics:
        doc.add(fields=[(esc(k), esc(_num(x))) for k, x in list(metrics.items())[:10]])
    per_class = ev.get("per_class") or []
    if isinstance(per_class, dict):  # {"class": {...}} as some scripts write it
        per_class = [{"class": k, **(v if isinstance(v, dict) else {})}
                     for k, v in per_class.items()]
    if per_class:
        rows = ["class        precision  recall  f1      support"]
        for r in per_class[:20]:
            rows.append(f"{str(r.get('class'))[:12]:<12} {_f(r.get('precision'))}  "
                        f"{_f(r.get('recall'))}  {_f(r.get('f1'))}  {r.get('support', '')}")
        if len(per_class) > 20:
            rows.append(f"… {len(per_class) - 20} more classes")
        doc.add("*Per class*", code="\n".join(rows))
    return doc


def logs_doc(v: JobVersion, lines: list[str]) -> Doc:
    doc = Doc(title=f"Logs of *{esc(v.label)}* (last {len(lines)} lines)")
    doc.add(code="\n".join(lines) or "(no output yet)")
    return doc


def status_doc(o: StatusOverview, *, stuck_after: timedelta,
               objectives: Mapping[str, str] | None = None) -> Doc:
    """``objectives``: algorithm id → its objective metric, first in each progress line."""
    doc = Doc(title=f":satellite: trainbot status — {o.now:%Y-%m-%d %H:%M} UTC")
    doc.add(fields=[("Running", str(len(o.running))), ("Queued", str(len(o.queued))),
                    ("Awaiting approval", str(len(o.awaiting))),
                    ("Failed (24 h)", str(len(o.failed_recent))), ("Stuck", str(len(o.stuck))),
                    ("GPUs in use", str(o.gpus_in_use) + (
                        " (" + esc(", ".join(f"{k}: {n}" for k, n in o.gpus_by_pool.items()))
                        + ")"
                        if o.gpus_by_pool else ""))])
    stuck = {(v.job, v.number) for v in o.stuck}

    def line(v: JobVersion) -> str:
        age = _age(o.now - v.created_at)
        flag = " :warning: *stuck*" if (v.job, v.number) in stuck else ""
        prog = f" · {_progress(v, (objectives or {}).get(v.spec.algorithm))}" \
            if v.progress else ""
        return (f"{v.status.emoji} *{esc(v.label)}* {code(v.spec.pool)} · {v.status.value} · "
                f"{age}{prog} · {mention(v.requested_by)}{flag}")

    for heading, items in (("Running", o.running), ("Queued", o.queued),
                           ("Awaiting approval", o.awaiting)):
        if items:
            doc.add(f"*{heading}*\n" + "\n".join(line(v) for v in items[:15])
                    + (f"\n… {len(items) - 15} more" if len(items) > 15 else ""))
    if o.sweeps:
        doc.add("*Sweeps*\n" + "\n".join(sweep_line(sw, trials) for sw, trials in o.sweeps[:10])
                + (f"\n… {len(o.sweeps) - 10} more" if len(o.sweeps) > 10 else ""))
    if o.failed_recent:
        doc.add("*Failed in the last 24 h*\n" + "\n".join(
            f":x: *{esc(v.label)}* — {esc(_clip(v.failure_reason or 'unknown', 150))}"
            for v in o.failed_recent[:10]))
    if not (o.running or o.queued or o.awaiting or o.failed_recent or o.sweeps):
        doc.add("Nothing running, queued or failed. :zzz:")
    doc.context.append(f"stuck = no progress for {_age(stuck_after)}")
    return doc


def presets_doc(presets: list[Preset]) -> Doc:
    doc = Doc(title="Presets")
    if not presets:
        doc.add("No presets yet. Save one with `/train preset save NAME --from JOB vN`.")
    for p in presets:
        doc.add(f"*{esc(p.name)}* — {esc(p.description or 'no description')}",
                fields=[("Algorithm", code(p.spec.algorithm)), ("Pool", code(p.spec.pool)),
                        ("Parameters", _kv(p.spec.hyperparameters, 4) or "defaults")])
        doc.buttons.append(Button(
            f"Start {p.name}", f"{START_PRESET}:{p.name}", p.name, style="primary",
            confirm=f"Start a new job from preset {esc(p.name)} on {esc(p.spec.pool)}?"))
    return doc


def preset_doc(p: Preset) -> Doc:
    doc = Doc(title=f"Preset *{esc(p.name)}*")
    doc.add(esc(p.description or "") or " ", fields=[
        ("Algorithm", f"{code(p.spec.algorithm)} {esc(p.spec.algorithm_version)}"),
        ("Pool", code(p.spec.pool)), ("Owner", mention(p.owner)),
        ("Data", _data(p.spec.data, p.spec.data_origin) or "algorithm default"),
        ("Created", f"{p.created_at:%Y-%m-%d %H:%M}"),
    ])
    doc.add("*Parameters* " + (_kv(p.spec.hyperparameters, 50) or "defaults"))
    doc.buttons.append(Button("Start", f"{START_PRESET}:{p.name}", p.name, style="primary",
                              confirm=f"Start a new job from preset {esc(p.name)}?"))
    doc.buttons.append(Button("Delete", "delete_preset", p.name, style="danger",
                              confirm=f"Delete preset {esc(p.name)}? This can't be undone."))
    return doc


def approval_doc(a: Approval, v: JobVersion, *, estimated_cost: float | None = None) -> Doc:
    """The approval card, posted when requested and updated in place once decided.

    The estimate is the version's own (priced when it was requested), so the decided card
    shows the same figure as the requested one; ``estimated_cost`` overrides it.
    """
    cost = estimated_cost if estimated_cost is not None else v.estimated_cost_usd
    base = f" (rerun of v{a.base_version})" if a.base_version else ""
    asks = "asks" if a.pending else "asked"
    doc = Doc(title=f":raising_hand: {mention(a.requested_by)} {asks} to run "
                    f"*{esc(a.job)} v{a.version}*{base}")
    changes = ", ".join(f"{code(k)}={code(v_)}" for k, v_ in a.overrides.items()) or "no changes"
    estimate = f"≤ {usd(cost)}" if cost is not None else "—"
    if cost is not None and v.spec.spot and v.estimated_spot_cost_usd is not None:
        estimate += f" · spot ≈ {usd(v.estimated_spot_cost_usd)}"
    fields = [("Changes", changes), ("Pool", code(a.pool)), ("Estimated cost", estimate)]
    if a.pending:
        fields.append(("Expires", f"{a.expires_at:%Y-%m-%d %H:%M} UTC"))
    # A budget's reason ("over budget: $X of $Y used …") is what an approver weighs: it
    # stands out on its own line; the pool's or the policy's reason comes first.
    why, over, budget = a.reason.partition(OVER_BUDGET)
    why = why.strip().rstrip(";").strip()
    lines = [f":money_with_wings: *Over budget:* {esc(budget.strip())}"] if over else []
    if why or not over:
        lines.append(f"Why approval: {esc(why)}")
    doc.add("\n".join(lines), fields=fields)
    if a.pending:
        doc.buttons.append(Button("Approve", "approve_request", a.id, style="primary"))
        doc.buttons.append(Button("Reject", "reject_request", a.id, style="danger"))
    else:
        doc.context.append(_decision(a))
    doc.context.append(f"request {code(a.id)}")
    return doc


def _decision(a: Approval) -> str:
    at = f" at {a.decided_at:%Y-%m-%d %H:%M} UTC" if a.decided_at else ""
    if a.decision is Decision.EXPIRED:
        return f"expired{at}: nobody decided in time"
    note = f" — {esc(a.decision_note)}" if a.decision_note else ""
    return f"{a.decision} by {mention(a.decided_by)}{at}{note}"


def _params(v: JobVersion) -> str:
    return "*Parameters* " + (_kv(v.spec.hyperparameters, KEY_PARAMS) or "defaults")


def _data(data: dict[str, str], origin: dict[str, str] | None = None) -> str:
    """``channel=uri``; a file shared in the chat by its name, id and sha256 instead."""
    return ", ".join(f"{esc(k)}={code((origin or {}).get(k) or u)}" for k, u in data.items())


def _kv(d: dict, n: int) -> str:
    items = list(d.items())
    text = "  ".join(code(f"{k}={x}") for k, x in items[:n])
    return text + (f"  … +{len(items) - n}" if len(items) > n else "")


def _objective_first(metrics: Mapping[str, float],
                     objective: str | None) -> list[tuple[str, float]]:
    """The algorithm's objective metric first, then the others by name."""
    return sorted(metrics.items(), key=lambda kv: (kv[0] != objective, kv[0]))


def _metrics_heading(status: Status) -> str:
    if status is Status.COMPLETED:
        return "*Metrics*"
    return "*Last metrics*" if status.terminal else "*Metrics so far*"


def _run_began(v: JobVersion) -> bool:
    """Whether the backend started running the version (``started_at`` is set on STARTING
    or TRAINING; a missed event can skip both on the way to COMPLETED)."""
    return v.started_at is not None or v.status in (
        Status.TRAINING, Status.UPLOADING, Status.COMPLETED)


# Launch notes are written when a version is launched, often before it runs, and stored with
# it; older local-compute notes said "ran locally on CPU (…)". Shown as what they describe.
_PAST_NOTE = "ran locally on CPU"


def _compute_note(note: str) -> str:
    return "local CPU" + note[len(_PAST_NOTE):] if note.startswith(_PAST_NOTE) else note


def _progress(v: JobVersion, objective: str | None = None) -> str:
    p = v.progress
    if p is None:
        return ""
    parts = []
    if p.current is not None and p.total:
        pct = p.percent or 0.0
        bar = "█" * int(pct / 10) + "░" * (10 - int(pct / 10))
        parts.append(f"{bar} {int(p.current)}/{int(p.total)} ({pct:.0f}%)")
    parts.extend(esc(f"{k}={_num(x)}") for k, x in _objective_first(p.metrics, objective)[:3])
    return " ".join(parts)


def _spot(v: JobVersion) -> str:
    """Managed spot: an interruption is weathered, not a stop."""
    n = v.spot_interruptions
    times = f"{n} spot interruption{'s' if n > 1 else ''}"
    if v.status.terminal or v.status is Status.STOPPING:
        return f":recycle: {times} during the run"
    if v.secondary_status == "Training":
        return f":recycle: resumed after {times}"
    epoch = (f"checkpoint epoch {int(v.progress.current)}"
             if v.progress and v.progress.current is not None else "the last checkpoint")
    return f":recycle: spot interruption {n} — resuming from {epoch}"


def _timing(v: JobVersion, now: datetime | None) -> str:
    """When the run started and how long it took (or has taken): only what is known."""
    if v.started_at is None:
        return ""
    text = f"started {v.started_at:%H:%M:%S} UTC"
    if v.ended_at:
        text += f", took {_age(v.ended_at - v.started_at)}"
    elif now is not None and not v.status.terminal:
        text += f", {_age(now - v.started_at)} ago"
    return text


def _cost(v: JobVersion) -> str:
    """What the version costs: after its end what it did (and, on spot, what spot saved);
    before, its ceiling — the pool's price for its whole max runtime — and, on spot, the
    figure with the pool's expected discount."""
    if v.actual_cost_usd is not None:
        return f"{usd(v.actual_cost_usd)} actual" + (
            f" · spot saved {usd(v.spot_saving_usd)}" if v.spot_saving_usd else "")
    if v.status.terminal and not v.backend_job_name:
        return "none (never launched)"
    return _estimate(v) or "—"


def _estimate(v: JobVersion) -> str:
    """``≤ $33.79 ceiling · spot ≈ $10.14`` (the spot figure on spot only); "" if unpriced."""
    if v.estimated_cost_usd is None:
        return ""
    text = f"≤ {usd(v.estimated_cost_usd)} ceiling"
    if v.spec.spot and v.estimated_spot_cost_usd is not None:
        text += f" · spot ≈ {usd(v.estimated_spot_cost_usd)}"
    return text


def _age(d: timedelta) -> str:
    s = int(d.total_seconds())
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    return f"{s // 86400}d {s % 86400 // 3600}h"


def _num(x: object) -> str:
    if isinstance(x, float):
        return f"{x:.4g}"
    return "—" if x is None else str(x)


def _f(x: object) -> str:
    return f"{x:.3f}" if isinstance(x, int | float) else "  —  "


def _yes(b: bool) -> str:
    return "yes" if b else "no"


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"

