"""Presenters of registered models: the approval card, a group's versions, every group."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from bot.domain import ModelStatus, ModelVersion
from bot.views.doc import Button, Doc
from bot.views.mrkdwn import code, esc, mention

__all__ = ["APPROVE_MODEL", "REJECT_MODEL", "model_card", "model_ref", "models_doc",
           "parse_model_ref"]

APPROVE_MODEL = "approve_model"
REJECT_MODEL = "reject_model"
_STATUS = {ModelStatus.PENDING: ":hourglass_flowing_sand: pending approval",
           ModelStatus.APPROVED: ":white_check_mark: approved",
           ModelStatus.REJECTED: ":no_entry_sign: rejected"}
VERSIONS_SHOWN = 10


def model_ref(m: ModelVersion) -> str:
    """A model button's value: ``GROUP:N``."""
    return f"{m.group}:{m.number}"


def parse_model_ref(value: str) -> tuple[str, int]:
    group, _, number = value.rpartition(":")
    return group, int(number)


def model_card(m: ModelVersion) -> Doc:
    """The model's approval card: what was registered (objective, metrics, source version,
    lineage); Approve/Reject while pending, then who decided. Updated in place, so every line
    holds in the state it shows."""
    asks = "asks to approve" if m.pending else "registered"
    doc = Doc(title=f":package: {mention(m.registered_by)} {asks} model *{esc(m.label)}* — "
                    f"{_STATUS[m.status]}")
    fields = [("Objective", _objective(m)),
              ("Source version", f"*{esc(m.job)} v{m.version}*"),
              ("Algorithm", f"{code(m.algorithm)} {esc(m.algorithm_version)}"
               + (f" · {code('sha256:' + m.algorithm_digest[:12])}" if m.algorithm_digest
                  else "")),
              ("Artifact", code(m.artifact))]
    if m.image:
        fields.append(("Image", code(m.image)))
    doc.add(_metrics(m), fields=fields)
    summary = lineage_summary(m)
    if summary:
        doc.add(f"*Lineage* {summary}")
    if m.pending:
        ref = model_ref(m)
        doc.buttons.append(Button("Approve", APPROVE_MODEL, ref, style="primary"))
        doc.buttons.append(Button("Reject", REJECT_MODEL, ref, style="danger"))
    else:
        doc.context.append(decision(m))
    doc.context.append(f"model {code(m.label)}"
                       + (f" · {code(m.package_arn)}" if m.package_arn else ""))
    return doc


def decision(m: ModelVersion) -> str:
    at = f" at {m.decided_at:%Y-%m-%d %H:%M} UTC" if m.decided_at else ""
    note = f" — {esc(m.note)}" if m.note else ""
    how = "approved" if m.status is ModelStatus.APPROVED else "rejected"
    return f"{how} by {mention(m.decided_by)}{at}{note}"


def lineage_summary(m: ModelVersion) -> str:
    """The parts of the lineage people check before approving: data, parent, the training
    version's own approval, the preset."""
    lin = m.lineage
    parts = [f"{esc(k.removeprefix('data.'))}={code(lin.get('data_origin.' + k[5:]) or v)}"
             for k, v in lin.items() if k.startswith("data.")]
    if "parent" in lin:
        parts.append(f"from {esc(lin['parent'])}")
    if "preset" in lin:
        parts.append(f"preset {code(lin['preset'])}")
    if "approved_by" in lin:
        parts.append(f"run approved by {mention(lin['approved_by'])}")
    return " · ".join(parts)


def models_doc(groups: Mapping[str, Sequence[ModelVersion]], *, one_group: bool = False
               ) -> Doc:
    """Every group with its versions (newest first): status, objective, source version."""
    if one_group and len(groups) == 1:
        (name,) = groups
        doc = Doc(title=f"Model group *{esc(name)}*")
    else:
        doc = Doc(title="Models")
    if not groups:
        doc.add("No models are registered yet. Register a completed version with "
                "`/train model register JOB [vN]`.")
    for name, versions in groups.items():
        shown = list(reversed(versions))[:VERSIONS_SHOWN]
        lines = [_row(m) for m in shown]
        if len(versions) > len(shown):
            lines.append(f"… {len(versions) - len(shown)} older")
        head = "" if one_group else f"*{esc(name)}* ({len(versions)})\n"
        doc.add(head + "\n".join(lines))
    doc.context.append("`/train model approve GROUP vN` · `/train model reject GROUP vN "
                       "--reason …` · `/train lineage JOB vN` shows a version's models")
    return doc


def _row(m: ModelVersion) -> str:
    status = _STATUS[m.status]
    who = f" by {mention(m.decided_by)}" if m.decided_by else ""
    return (f"*v{m.number}* {status}{who} · {_objective(m)} · from *{esc(m.job)} "
            f"v{m.version}* · {mention(m.registered_by)} {m.registered_at:%Y-%m-%d %H:%M}")


def _objective(m: ModelVersion) -> str:
    if m.objective_metric is None:
        return "—"
    return f"{esc(m.objective_metric)} = *{_num(m.objective_value)}*"


def _metrics(m: ModelVersion) -> str:
    ordered = sorted(m.metrics.items(), key=lambda kv: (kv[0] != m.objective_metric, kv[0]))
    shown = "  ".join(f"{esc(k)}={_num(x)}" for k, x in ordered[:12])
    more = f"  … +{len(ordered) - 12}" if len(ordered) > 12 else ""
    return "*Metrics* " + (shown + more if shown else "none reported")


def _num(x: float | None) -> str:
    return "—" if x is None else f"{x:.4g}"
