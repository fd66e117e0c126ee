"""Buttons and modals: rerun with approval, approve/reject, presets, the start form.

Each listener acks first; anything that touches the store or the backend runs lazily.
View submissions validate in the ack (cheap, no I/O beyond the catalog) so field errors come
back inline (``response_action: errors``) instead of as a failed submission.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from bot.dispatch import Actor
from bot.domain import NotFound, TrainbotError
from bot.domain.preset import PRESET_NAME
from bot.error_text import user_text
from bot.services import approvals, launching, presets, queries
from bot.services.context import Deps
from bot.slack import forms
from bot.slack.blocks import fallback_text, render_blocks
from bot.views import presenters
from bot.views.doc import Doc

__all__ = ["open_start_modal", "register"]

log = logging.getLogger("trainbot.slack")
Respond = Callable[..., Any]


def _ref(body: dict) -> tuple[str, int]:
    job, _, number = body["actions"][0]["value"].rpartition(":")
    return job, int(number)


def _actor(body: dict) -> Actor:
    channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get(
        "channel_id")
    trigger = body.get("trigger_id")
    team = (body.get("team") or {}).get("id", "")
    return Actor(user=body["user"]["id"], channel=channel,
                 request_key=f"{team}:{trigger}" if trigger else None)


def _say(respond: Respond, doc: Doc) -> None:
    respond(response_type="ephemeral", replace_original=False, text=fallback_text(doc),
            blocks=render_blocks(doc))


def _fail(respond: Respond, exc: Exception) -> None:
    respond(response_type="ephemeral", replace_original=False,
            text=":warning: " + user_text(exc, log=log))


def _guard(work: Callable[..., None]) -> Callable[..., None]:
    """Every lazy listener ends in a message to the user — never a silent drop."""

    def run(body: dict, respond: Respond, client: Any) -> None:
        try:
            work(body, respond, client)
        except Exception as exc:
            _fail(respond, exc)

    run.__name__ = work.__name__
    return run


def _ack(ack: Callable[..., None]) -> None:
    ack()


def open_start_modal(deps: Deps, client: Any, trigger_id: str, actor: Actor) -> None:
    view = forms.start_choice_view(deps.catalog, presets.list_presets(deps),
                                   {"channel": actor.channel})
    client.views_open(trigger_id=trigger_id, view=view)


def register(app: Any, deps: Deps, *, stuck_after: timedelta) -> None:
    """Attach every button and view listener to ``app``."""

    @_guard
    def show_lineage(body: dict, respond: Respond, client: Any) -> None:
        job, number = _ref(body)
        _say(respond, presenters.lineage_doc(queries.lineage(deps, job, number)))

    @_guard
    def show_logs(body: dict, respond: Respond, client: Any) -> None:
        v = queries.get_version(deps, *_ref(body))
        _say(respond, presenters.logs_doc(v, queries.logs(deps, v, lines=40)))

    @_guard
    def show_eval(body: dict, respond: Respond, client: Any) -> None:
        version = queries.get_version(deps, *_ref(body))
        _say(respond, presenters.eval_doc(version))
        post = getattr(deps.chat, "post_confusion_matrix", None)
        if post is not None:
            post(version, channel=_actor(body).channel)

    @_guard
    def stop(body: dict, respond: Respond, client: Any) -> None:
        job, number = _ref(body)
        v = launching.stop_version(deps, user=body["user"]["id"], job=job, number=number)
        _say(respond, Doc(title=f"{v.status.emoji} {v.label}: {v.status.value.lower()}."))

    @_guard
    def approve(body: dict, respond: Respond, client: Any) -> None:
        approval_id = body["actions"][0]["value"]
        _, v = approvals.decide(deps, approval_id=approval_id, user=body["user"]["id"],
                                approve=True)
        _say(respond, Doc(title=f":white_check_mark: Approved — {v.label} is "
                                f"{v.status.value.lower()}."))

    @_guard
    def reject(body: dict, respond: Respond, client: Any) -> None:
        approval_id = body["actions"][0]["value"]
        approvals.check_can_decide(deps, approval_id=approval_id, user=body["user"]["id"])
        client.views_open(trigger_id=body["trigger_id"],
                          view=forms.reason_view(approval_id, {"channel": _actor(body).channel}))

    @_guard
    def rerun_form(body: dict, respond: Respond, client: Any) -> None:
        job, number = _ref(body)
        v = deps.store.get_version(job, number)
        algorithm = deps.catalog.algorithm(v.spec.algorithm)
        meta = {"job": job, "version": number, "channel": _actor(body).channel}
        view = forms.hyperparameter_view(
            algorithm, dict(v.spec.hyperparameters), meta, callback_id="rerun_form",
            title=f"Rerun {job} v{number}"[:24], pools=list(deps.catalog.pools), pool=v.spec.pool)
        client.views_open(trigger_id=body["trigger_id"], view=view)

    @_guard
    def save_preset_form(body: dict, respond: Respond, client: Any) -> None:
        job, number = _ref(body)
        deps.store.get_version(job, number)
        client.views_open(trigger_id=body["trigger_id"], view=forms.save_preset_view(
            {"job": job, "version": number, "channel": _actor(body).channel}))

    @_guard
    def start_preset(body: dict, respond: Respond, client: Any) -> None:
        actor = _actor(body)
        deps.policy.check_channel(actor.channel)
        req = launching.LaunchRequest(user=actor.user, preset=body["actions"][0]["value"],
                                      channel=actor.channel, request_key=actor.request_key)
        v, approval = launching.start_job(deps, req)
        state = "is waiting for approval" if approval else "is launching"
        _say(respond, Doc(title=f":rocket: {v.label} {state} (preset `{v.spec.preset}`)."))

    @_guard
    def delete_preset(body: dict, respond: Respond, client: Any) -> None:
        p = presets.delete_preset(deps, user=body["user"]["id"], name=body["actions"][0]["value"])
        _say(respond, Doc(title=f":wastebasket: Preset *{p.name}* deleted."))

    for action_id, work in (
        ("show_lineage", show_lineage), ("show_logs", show_logs), ("show_eval", show_eval),
        ("stop_version", stop), ("approve_request", approve), ("reject_request", reject),
        ("rerun_version", rerun_form), ("save_preset", save_preset_form),
        ("start_preset", start_preset), ("delete_preset", delete_preset),
    ):
        app.action(action_id)(ack=_ack, lazy=[work])
    app.action("open_tensorboard")(_ack)  # a URL button: Slack opens the link itself

    _register_views(app, deps)


def _meta(body: dict) -> dict:
    try:
        return json.loads(body["view"].get("private_metadata") or "{}")
    except ValueError:
        return {}


def _notify_user(client: Any, user: str, channel: str | None, text: str) -> None:
    """A view submission has no response_url: tell the user ephemerally in the channel."""
    if channel:
        client.chat_postEphemeral(channel=channel, user=user, text=text[:3000])
    else:
        client.chat_postMessage(channel=user, text=text[:3000])


def _register_views(app: Any, deps: Deps) -> None:
    def choose_ack(ack: Callable[..., None], body: dict, view: dict) -> None:
        values = forms.read_values(view)
        meta = _meta(body)
        source = values.get("source", "")
        kind, _, ident = source.partition(":")
        try:
            if kind == "preset":
                preset = presets.show_preset(deps, ident)
                algorithm = deps.catalog.algorithm(preset.spec.algorithm)
                current = dict(preset.spec.hyperparameters)
                pool = values.get("pool") or preset.spec.pool
            else:
                algorithm = deps.catalog.algorithm(ident)
                current = algorithm.defaults()
                pool = values.get("pool") or deps.catalog.default_pool
            name = values.get("name")
            if name:
                from bot.domain.job import validate_job_name

                validate_job_name(name)
        except TrainbotError as exc:
            block = "name" if "job name" in exc.message else "source"
            ack(response_action="errors", errors={block: exc.message[:150]})
            return
        meta.update({"algorithm": algorithm.id, "preset": ident if kind == "preset" else None,
                     "pool": pool, "name": name})
        ack(response_action="update", view=forms.hyperparameter_view(
            algorithm, current, meta, callback_id="start_form", title="Start training",
            pools=list(deps.catalog.pools), pool=pool))

    app.view("start_choose")(choose_ack)

    # Bolt runs lazy listeners whatever the ack answered, so each submit re-checks with the
    # same function its ack used and does nothing when the form came back with errors.
    def form_errors(body: dict) -> dict[str, str]:
        meta = _meta(body)
        try:
            algo_id = meta.get("algorithm") or deps.store.get_version(
                meta["job"], meta["version"]).spec.algorithm
            algorithm = deps.catalog.algorithm(algo_id)
        except (TrainbotError, KeyError):
            return {"pool": "This form is out of date; start again."}
        return forms.validate_form(algorithm, forms.read_values(body["view"]))[1]

    def form_ack(ack: Callable[..., None], body: dict, view: dict) -> None:
        errors = form_errors(body)
        if errors:
            ack(response_action="errors", errors=errors)
            return
        ack(response_action="clear")

    def start_submit(body: dict, client: Any) -> None:
        if form_errors(body):
            return
        meta, values = _meta(body), forms.read_values(body["view"])
        user = body["user"]["id"]
        algorithm = deps.catalog.algorithm(meta["algorithm"])
        params, _ = forms.validate_form(algorithm, values)
        req = launching.LaunchRequest(
            user=user, algorithm=None if meta.get("preset") else algorithm.id,
            preset=meta.get("preset"), params=params, pool=values.get("pool") or meta.get("pool"),
            job_name=meta.get("name"), channel=meta.get("channel"),
            request_key=f"view:{body['view']['id']}",
        )
        _launch_and_tell(client, user, meta.get("channel"),
                         lambda: launching.start_job(deps, req))

    def rerun_submit(body: dict, client: Any) -> None:
        if form_errors(body):
            return
        meta, values = _meta(body), forms.read_values(body["view"])
        user = body["user"]["id"]
        base = deps.store.get_version(meta["job"], meta["version"])
        algorithm = deps.catalog.algorithm(base.spec.algorithm)
        params, _ = forms.validate_form(algorithm, values)
        # Only what the person changed counts as an override.
        changed = {k: raw for k, raw in params.items()
                   if algorithm.hyperparameter(k).coerce(raw) != base.spec.hyperparameters.get(k)}
        req = launching.LaunchRequest(user=user, params=changed, pool=values.get("pool"),
                                      channel=meta.get("channel"),
                                      request_key=f"view:{body['view']['id']}")
        _launch_and_tell(client, user, meta.get("channel"), lambda: launching.rerun(
            deps, req, job=meta["job"], base_number=meta["version"]))

    def _launch_and_tell(client: Any, user: str, channel: str | None, launch: Callable) -> None:
        try:
            v, approval = launch()
            text = (f":hourglass_flowing_sand: {v.label} is waiting for approval "
                    f"(request `{approval.id}`)." if approval else f":rocket: {v.label} launched.")
        except Exception as exc:
            text = ":warning: " + user_text(exc, log=log)
        _notify_user(client, user, channel, text)

    app.view("start_form")(ack=form_ack, lazy=[start_submit])
    app.view("rerun_form")(ack=form_ack, lazy=[rerun_submit])

    def reason(body: dict) -> str:
        return (forms.read_values(body["view"]).get("reason") or "").strip()[:500]

    def reject_ack(ack: Callable[..., None], body: dict, view: dict) -> None:
        if not reason(body):
            ack(response_action="errors", errors={"reason": "Say why, so the requester knows."})
            return
        ack(response_action="clear")

    def reject_submit(body: dict, client: Any) -> None:
        if not reason(body):
            return
        meta = _meta(body)
        user = body["user"]["id"]
        try:
            _, v = approvals.decide(deps, approval_id=meta["approval"], user=user, approve=False,
                                    note=reason(body))
            text = f":no_entry_sign: Rejected — {v.label} will not run."
        except Exception as exc:
            text = ":warning: " + user_text(exc, log=log)
        _notify_user(client, user, meta.get("channel"), text)

    app.view("reject_reason")(ack=reject_ack, lazy=[reject_submit])

    def preset_errors(body: dict) -> dict[str, str]:
        name = forms.read_values(body["view"]).get("name", "")
        if not re.fullmatch(PRESET_NAME, name):
            return {"name": "Use 1-64 letters, digits, - or _."}
        try:
            presets.show_preset(deps, name)
        except NotFound:
            return {}
        return {"name": f"`{name}` exists; pick another."}

    def preset_ack(ack: Callable[..., None], body: dict, view: dict) -> None:
        errors = preset_errors(body)
        if errors:
            ack(response_action="errors", errors=errors)
            return
        ack(response_action="clear")

    def preset_submit(body: dict, client: Any) -> None:
        if preset_errors(body):
            return
        meta, values = _meta(body), forms.read_values(body["view"])
        user = body["user"]["id"]
        try:
            p = presets.save_preset(deps, user=user, name=values.get("name", ""),
                                    description=values.get("description"),
                                    from_job=meta["job"], from_version=meta["version"])
            text = f":bookmark: Saved preset *{p.name}* — `/train start --preset {p.name}`."
        except Exception as exc:
            text = ":warning: " + user_text(exc, log=log)
        _notify_user(client, user, meta.get("channel"), text)

    app.view("save_preset")(ack=preset_ack, lazy=[preset_submit])
