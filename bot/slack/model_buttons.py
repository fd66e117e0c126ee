"""The model approval card's Reject: a reason form whose submission is `/train model reject`.

(Register model and Approve stand for their commands directly: ``BUTTON_COMMANDS``.) Like
:mod:`bot.slack.interactions`, translations only; ``bot.slack.app`` imports this module
when one of its listeners runs.
"""

from __future__ import annotations

from typing import Any

from bot.commands import ModelReject
from bot.services import models
from bot.services.context import Deps
from bot.slack import forms
from bot.slack.interactions import (
    Ack,
    DepsSource,
    Respond,
    _actor,
    _answer,
    _meta,
    _modal_guard,
    _submit,
)
from bot.views.models import parse_model_ref

__all__ = ["reject_model", "reject_model_reason_ack", "reject_model_reason_submit"]


@_modal_guard("Reject model")
def reject_model(deps: Deps, body: dict, respond: Respond, client: Any) -> dict:
    group, number = parse_model_ref(body["actions"][0]["value"])
    models.check_can_decide(deps, group, number, user=body["user"]["id"])
    return forms.model_reason_view(group, number, {"channel": _actor(body).channel})


def _reason(body: dict) -> str:
    return (forms.read_values(body["view"]).get("reason") or "").strip()[:500]


def reject_model_reason_ack(deps_source: DepsSource, ack: Ack, body: dict, view: dict) -> None:
    _answer(ack, {} if _reason(body) else {"reason": "Say why, so whoever registered it knows."})


def _reject_command(deps: Deps, body: dict) -> ModelReject | None:
    reason, meta = _reason(body), _meta(body)
    if not reason:
        return None
    return ModelReject(group=str(meta["group"]), number=int(meta["number"]), reason=reason)


def reject_model_reason_submit(deps_source: DepsSource, body: dict, client: Any) -> None:
    _submit(deps_source, body, client, _reject_command)
