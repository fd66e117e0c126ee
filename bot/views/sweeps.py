"""Presenters of sweeps: the one card per sweep (updated in place), its thread messages, and
the lines ``/train status`` shows.

Every value a user gave (choices, fixed text, the origin, a failure reason) is escaped, and
what can grow with the search space (parameters, the leaderboard) is cut to fit Slack's
limits *before* it is escaped, so a cut never leaves half an entity behind.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from bot.domain.sweep import Sweep, SweepStatus, Trial, best, counts, ranked
from bot.domain.sweep_space import Choices, FloatRange, ParamRange
from bot.views.doc import Button, Doc
from bot.views.mrkdwn import code, esc, mention

__all__ = ["STOP_SWEEP", "TOP", "leaderboard_text", "new_best_text", "sweep_card",
           "sweep_ended_text", "sweep_line"]

STOP_SWEEP = "stop_sweep"
TOP = 5
# Escaped lengths: a section's text holds 3,000 characters and a field 2,000 (see
# bot.slack.blocks), so five leaderboard rows of ROW each fit one code block.
ROW = 560
PARAMS = 1500
SPACE = 1800
_STATUS = {
    SweepStatus.AWAITING_APPROVAL: ":hourglass_flowing_sand:",
    SweepStatus.RUNNING: ":mag:",
    SweepStatus.STOPPING: ":double_vertical_bar:",
    SweepStatus.COMPLETED: ":white_check_mark:",
    SweepStatus.STOPPED: ":black_square_for_stop:",
    SweepStatus.FAILED: ":x:",
    SweepStatus.REJECTED: ":no_entry_sign:",
}


def _num(x: float | None) -> str:
    return "—" if x is None else f"{x:.4g}"


def _value(v: object) -> str:
    if isinstance(v, bool):
        return str(v).lower()
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _fit(text: str, n: int) -> str:
    """``text`` cut so that its escaped form is at most ``n`` characters (``…`` marks a
    cut): escaping can make a value five times longer, so the raw text is what is cut."""
    if len(esc(text)) <= n:
        return text
    out: list[str] = []
    size = 1  # the ellipsis
    for ch in text:
        size += len(esc(ch))
        if size > n:
            break
        out.append(ch)
    return "".join(out) + "…"


def _params(params: Mapping[str, object], n: int = PARAMS) -> str:
    return _fit(" ".join(f"{k}={_value(v)}" for k, v in params.items()), n)


def _range(r: ParamRange) -> str:
    if isinstance(r, Choices):
        return f"{r.name}=" + "|".join(_value(v) for v in r.values)
    low, high = (_value(r.low), _value(r.high)) if isinstance(r, FloatRange) else (
        str(r.low), str(r.high))
    return f"{r.name}={low}..{high}" + (":log" if r.log else "")


def _counts_line(sweep: Sweep, trials: Sequence[Trial]) -> str:
    c = counts(trials)
    return (f"{c.done} done · {c.running} running · {c.pruned} pruned · {c.failed} failed "
            f"· {c.total}/{sweep.spec.trials} started")


def leaderboard_text(sweep: Sweep, trials: Sequence[Trial], n: int = TOP) -> str:
    """The top ``n`` as a fixed-width table (rank, trial, version, objective, parameters),
    each row short enough that five of them, escaped, fit one section."""
    top = ranked(sweep.spec, trials)[:n]
    rows = [_fit(f"{i + 1}. trial {t.number:<3} v{t.version:<4} {_num(t.objective):>8}  "
                 f"{_params(t.params, ROW)}", ROW) for i, t in enumerate(top)]
    return "\n".join(rows)


def sweep_card(sweep: Sweep, trials: Sequence[Trial]) -> Doc:
    """The sweep's card: what it searches, how far it got, the best so far with its
    parameters, the top five; buttons on the best trial (Rerun with these, Save as preset,
    Register model) and Stop sweep while it runs. Every line holds in the state it shows."""
    spec = sweep.spec
    emoji = _STATUS[sweep.status]
    doc = Doc(title=f"{emoji} {mention(sweep.requested_by)}'s sweep *{esc(sweep.name)}* — "
                    f"{sweep.status.value.lower().replace('_', ' ')}")
    origin = f" from {esc(_fit(sweep.origin, 300))}" if sweep.origin else ""
    doc.add(f"Searching {code(spec.algorithm)}{origin} for the "
            f"{'highest' if spec.objective_goal == 'maximize' else 'lowest'} "
            f"{code(spec.objective_metric)}",
            fields=[("Strategy", f"{spec.strategy.value} ({esc(sweep.backend)})"),
                    ("Trials", _counts_line(sweep, trials)),
                    ("Parallel", str(spec.parallel)),
                    ("Pool", code(spec.pool)),
                    ("Search space", code(_fit(" ".join(_range(r) for r in spec.ranges),
                                               SPACE))),
                    ("Ceiling", f"${sweep.estimated_cost_usd:,.2f} (trials × max runtime)"
                     if sweep.estimated_cost_usd is not None else "—")])
    top = best(spec, trials)
    if top is not None:
        lead = "Best" if sweep.status.terminal else "Best so far"
        doc.add(f":trophy: *{lead}*: trial {top.number} (*{esc(sweep.name)} "
                f"v{top.version}*) {code(spec.objective_metric)}={_num(top.objective)}\n"
                f"{code(_params(top.params))}")
        doc.add(f"*Top {min(TOP, len(ranked(spec, trials)))}*",
                code=leaderboard_text(sweep, trials))
        # The version card's own buttons (and handlers), on the best trial's version.
        ref = f"{sweep.name}:{top.version}"
        doc.buttons.append(Button("Rerun with these", "rerun_version", ref))
        doc.buttons.append(Button("Save as preset", "save_preset", ref))
        if top.model:
            doc.buttons.append(Button("Register model", "register_model", ref))
    if sweep.status is SweepStatus.AWAITING_APPROVAL and sweep.approval_id:
        # The sweep's card is its request's card: one decision for every trial.
        doc.add(f":raising_hand: *Needs an approver's OK* for all {spec.trials} trials "
                f"(request {code(sweep.approval_id)}) — nothing launches before it.")
        doc.buttons.append(Button("Approve", "approve_request", sweep.approval_id,
                                  style="primary"))
        doc.buttons.append(Button("Reject", "reject_request", sweep.approval_id,
                                  style="danger"))
        doc.buttons.append(Button("Withdraw", STOP_SWEEP, sweep.name,
                                  confirm=f"Withdraw the request for sweep "
                                          f"*{esc(sweep.name)}*?"))
    if sweep.failure_reason:
        doc.add(f"*Why it ended*: {esc(_fit(sweep.failure_reason, 500))}")
    if sweep.status is SweepStatus.RUNNING:  # not once stopping: it's on its way
        doc.buttons.append(Button("Stop sweep", STOP_SWEEP, sweep.name, style="danger",
                                  confirm=f"Stop sweep *{esc(sweep.name)}* and its running "
                                          "trials? Its best so far stays."))
    doc.context.append(f"trials are versions of {code(sweep.name)}: "
                       f"`/train versions {esc(sweep.name)}`"
                       + (f" · tuning job {code(sweep.backend_name)}" if sweep.backend_name
                          else ""))
    return doc


def new_best_text(sweep: Sweep, trial: Trial) -> str:
    return (f":trophy: New best in *{esc(sweep.name)}*: trial {trial.number} "
            f"(v{trial.version}) {code(sweep.spec.objective_metric)}={_num(trial.objective)} "
            f"with {code(_params(trial.params))}")


def sweep_ended_text(sweep: Sweep, trials: Sequence[Trial]) -> str:
    who = mention(sweep.requested_by)
    top = best(sweep.spec, trials)
    ending = {SweepStatus.COMPLETED: ":white_check_mark: {who} sweep *{name}* completed",
              SweepStatus.STOPPED: ":black_square_for_stop: {who} sweep *{name}* stopped",
              SweepStatus.FAILED: ":x: {who} sweep *{name}* failed",
              SweepStatus.REJECTED: ":no_entry_sign: {who} sweep *{name}* was not run"}
    text = ending.get(sweep.status, "{who} sweep *{name}* ended").format(
        who=who, name=esc(sweep.name)) + f" ({_counts_line(sweep, trials)})."
    if top is not None:
        text += (f" Best: trial {top.number} (v{top.version}) "
                 f"{code(sweep.spec.objective_metric)}={_num(top.objective)} "
                 f"{code(_params(top.params))}")
    if sweep.failure_reason:
        text += f"\n{esc(_fit(sweep.failure_reason, 500))}"
    return text


def sweep_line(sweep: Sweep, trials: Sequence[Trial]) -> str:
    """One line of ``/train status``."""
    top = best(sweep.spec, trials)
    lead = (f" · best {esc(sweep.spec.objective_metric)}={_num(top.objective)}"
            if top else "")
    return (f"{_STATUS[sweep.status]} *sweep {esc(sweep.name)}* {code(sweep.spec.pool)} · "
            f"{_counts_line(sweep, trials)}{lead} · {mention(sweep.requested_by)}")
