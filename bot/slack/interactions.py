"""What `/train`, the buttons and the modals do once acked: rerun with approval,
approve/reject, presets, the start form.

``bot.slack.app`` registers the listeners and imports this module only when one of them
runs, so a cold Lambda acks without importing the domain, the services or the store. Each
function here is named for the ``action_id`` / ``callback_id`` it serves and takes a
:data:`DepsSource` — the bot's dependencies are built on first use, here.

View submissions validate in the ack (cheap, no I/O beyond the catalog) so field errors come
back inline (``response_action: errors``) instead of as a failed submission.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from typing import Any

from bot.commands import parse
from bot.dispatch import Actor, execute
from bot.domain import (
    ChatUndelivered,
    InvalidInput,
    JobVersion,
    NotFound,
    Status,
    TrainbotError,
)
from bot.domain.approval import Approval
from bot.domain.preset import PRESET_NAME
from bot.error_text import user_text
from bot.services import approvals, launching, presets, queries, requests
from bot.services.context import Deps
from bot.slack import forms, options
from bot.slack.blocks import fallback_text, render_blocks
from bot.slack.hints import card_hint
from bot.slack.loading import external_id, message_view
from bot.slack.notifier import slack_call
from bot.views import presenters
from bot.views.doc import Doc
from bot.views.mrkdwn import code, esc, esc_keep_mentions

__all__ = ["DepsSource", "open_start_modal", "run_command"]

log = logging.getLogger("trainbot.slack")
Respond = Callable[..., Any]
Ack = Callable[..., None]
DepsSource = Callable[[], Deps]


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


def _reply(respond: Respond, text: str, blocks: list[dict] | None = None) -> None:
    """Answer through the ``response_url``. Bolt's ``respond`` doesn't raise when Slack refuses
    the body, so look at the answer: a refused one is logged, and the user still hears — in
    plain text — rather than seeing only the hourglass."""
    kwargs: dict[str, Any] = {"response_type": "ephemeral", "replace_original": False,
                              "text": text}
    if blocks:
        kwargs["blocks"] = blocks
    resp = respond(**kwargs)
    status = getattr(resp, "status_code", 200)
    if status == 200:
        return
    log.warning("Slack refused an answer (HTTP %s): %s", status,
                str(getattr(resp, "body", ""))[:300])
    if blocks:
        respond(response_type="ephemeral", replace_original=False,
                text=text + "\n(Slack refused the formatted answer; the log has the details.)")


def _say(respond: Respond, doc: Doc) -> None:
    _reply(respond, fallback_text(doc), render_blocks(doc))


def _fail(respond: Respond, exc: Exception) -> None:
    _reply(respond, ":warning: " + esc_keep_mentions(user_text(exc, log=log)))


def _guard(work: Callable[[Deps, dict, Respond, Any], None]
           ) -> Callable[[DepsSource, dict, Respond, Any], None]:
    """Every lazy listener ends in a message to the user — never a silent drop, even when
    the dependencies themselves can't be built. Every button is held to the channel
    allow-list."""

    def run(deps: DepsSource, body: dict, respond: Respond, client: Any) -> None:
        try:
            built = deps()
            built.policy.check_slack_channel(_actor(body).channel)
            work(built, body, respond, client)
        except Exception as exc:
            _fail(respond, exc)

    run.__name__ = work.__name__
    return run


def _modal_guard(title: str) -> Callable[[Callable[[Deps, dict, Respond, Any], dict]],
                                         Callable[[DepsSource, dict, Respond, Any], None]]:
    """For buttons whose ack opened a loading modal: ``work`` returns the view to show in
    it; a refusal or error replaces the loading view with a message saying so."""

    def wrap(work: Callable[[Deps, dict, Respond, Any], dict]
             ) -> Callable[[DepsSource, dict, Respond, Any], None]:
        def run(deps: DepsSource, body: dict, respond: Respond, client: Any) -> None:
            try:
                built = deps()
                built.policy.check_slack_channel(_actor(body).channel)
                view = work(built, body, respond, client)
            except Exception as exc:
                text = ":warning: " + esc_keep_mentions(user_text(exc, log=log))
                if _fill_modal(client, body["trigger_id"], message_view(title, text)):
                    _fail(respond, exc)
                return
            problem = _fill_modal(client, body["trigger_id"], view)
            if problem:
                _reply(respond, _modal_problem(problem))

        run.__name__ = work.__name__
        return run

    return wrap


_EXPIRED = (":warning: Slack's window for opening the form passed before trainbot could open "
            "it (`expired_trigger_id`) — click again (or run the command again).")


def _fill_modal(client: Any, trigger_id: str, view: dict) -> str | None:
    """Put ``view`` into the loading modal the ack opened; Slack's error code when it
    couldn't (``not_found``: there is no such modal — Slack refused to open it, the trigger
    had expired)."""
    try:
        slack_call(client.views_update, external_id=external_id(trigger_id), view=view)
    except ChatUndelivered as exc:
        return exc.code
    return None


def _modal_problem(code: str) -> str:
    if code in ("not_found", "expired_trigger_id"):
        return _EXPIRED
    return (f":warning: Slack didn't take the form (`{esc(code)}`) — try again in a moment; "
            "the log has the details.")


# -- /train ----------------------------------------------------------------------------------


def _request_key(command: dict) -> str | None:
    """Slack re-delivers the same payload on retry; its trigger_id identifies the request."""
    trigger = command.get("trigger_id")
    return f"{command.get('team_id', '')}:{trigger}" if trigger else None


def run_command(deps_source: DepsSource, command: dict, respond: Respond, client: Any) -> None:
    actor = Actor(user=command["user_id"], channel=command.get("channel_id"),
                  request_key=_request_key(command), interactive=True)
    try:
        deps = deps_source()
        deps.policy.check_slack_channel(actor.channel)
    except Exception as exc:
        _fail(respond, exc)
        return
    try:
        cmd = parse(command.get("text", ""), from_slack=True)
    except InvalidInput:
        return  # already answered in the ack
    if cmd.name == "help":
        return
    if cmd.name == "start" and not cmd.algorithm and not cmd.preset:
        try:
            problem = open_start_modal(deps, client, command["trigger_id"], actor)
        except Exception as exc:
            text = ":warning: " + esc_keep_mentions(user_text(exc, log=log))
            _fill_modal(client, command["trigger_id"], message_view("Start training", text))
            _reply(respond, text)
            return
        if problem:
            _reply(respond, _modal_problem(problem))
        return
    try:
        reply = execute(deps, cmd, actor, stuck_after=deps.stuck_after)
    except Exception as exc:
        _fail(respond, exc)
        return
    if reply.public and reply.version is not None:
        _reply(respond, launched_text(reply.version, reply.approval))
        return
    _say(respond, reply.doc)
    if cmd.name == "eval" and reply.version is not None:
        post = getattr(deps.chat, "post_confusion_matrix", None)
        if post is not None:
            post(reply.version, channel=actor.channel)


def launched_text(version: JobVersion, approval: Approval | None, *,
                  preset: str | None = None) -> str:
    """What the requester hears: the version, the request id when it waits for approval, and
    — when the card isn't in the channel — why, from Slack's own answer."""
    label = esc(version.label)
    source = f" (preset {code(preset)})" if preset else ""
    if approval is not None:
        label += source
        text = (f":hourglass_flowing_sand: {label} is waiting for approval "
                f"(request {code(approval.id)}).")
        if not approval.message_ts and version.card_error:
            text += (f" The request card couldn't be posted: "
                     f"{card_hint(version.card_error, ref=version.label)}; approvers were "
                     f"sent it directly. An approver can run `/train approve {esc(approval.id)}`.")
        return text
    if version.status is Status.AWAITING_APPROVAL:  # its request isn't readable yet
        return f":hourglass_flowing_sand: {label}{source} is waiting for approval."
    text = f":rocket: {label} is launching{source}."
    if not version.message_ts and version.card_error:
        text += f" No card in the channel: {card_hint(version.card_error, ref=version.label)}."
    return text


def open_start_modal(deps: Deps, client: Any, trigger_id: str, actor: Actor) -> str | None:
    """Fill the start form into the loading modal the ack opened; Slack's error code if it
    couldn't."""
    view = forms.start_choice_view(deps.catalog, presets.list_presets(deps),
                                   {"channel": actor.channel})
    return _fill_modal(client, trigger_id, view)


# -- buttons (one function per action_id) ----------------------------------------------------


@_guard
def show_lineage(deps: Deps, body: dict, respond: Respond, client: Any) -> None:
    job, number = _ref(body)
    _say(respond, presenters.lineage_doc(queries.lineage(deps, job, number)))


@_guard
def show_logs(deps: Deps, body: dict, respond: Respond, client: Any) -> None:
    v = queries.get_version(deps, *_ref(body))
    _say(respond, presenters.logs_doc(v, queries.logs(deps, v, lines=40)))


@_guard
def show_eval(deps: Deps, body: dict, respond: Respond, client: Any) -> None:
    version = queries.get_version(deps, *_ref(body))
    _say(respond, presenters.eval_doc(version))
    post = getattr(deps.chat, "post_confusion_matrix", None)
    if post is not None:
        post(version, channel=_actor(body).channel)


@_guard
def stop_version(deps: Deps, body: dict, respond: Respond, client: Any) -> None:
    job, number = _ref(body)
    v = launching.stop_version(deps, user=body["user"]["id"], job=job, number=number)
    _say(respond, Doc(title=f"{v.status.emoji} {esc(v.label)}: {v.status.value.lower()}."))


@_guard
def approve_request(deps: Deps, body: dict, respond: Respond, client: Any) -> None:
    approval_id = body["actions"][0]["value"]
    _, v = approvals.decide(deps, approval_id=approval_id, user=body["user"]["id"],
                            approve=True)
    _say(respond, Doc(title=f":white_check_mark: Approved — {esc(v.label)} is "
                            f"{v.status.value.lower()}."))


@_modal_guard("Reject request")
def reject_request(deps: Deps, body: dict, respond: Respond, client: Any) -> dict:
    approval_id = body["actions"][0]["value"]
    approvals.check_can_decide(deps, approval_id=approval_id, user=body["user"]["id"])
    return forms.reason_view(approval_id, {"channel": _actor(body).channel})


@_modal_guard("Rerun")
def rerun_version(deps: Deps, body: dict, respond: Respond, client: Any) -> dict:
    job, number = _ref(body)
    v = deps.store.get_version(job, number)
    algorithm = deps.catalog.algorithm(v.spec.algorithm)
    meta = {"job": job, "version": number, "channel": _actor(body).channel}
    return forms.hyperparameter_view(
        algorithm, dict(v.spec.hyperparameters), meta, callback_id="rerun_form",
        title=forms.rerun_title(job, number), pools=list(deps.catalog.pools), pool=v.spec.pool)


@_modal_guard("Save as preset")
def save_preset(deps: Deps, body: dict, respond: Respond, client: Any) -> dict:
    job, number = _ref(body)
    deps.store.get_version(job, number)
    return forms.save_preset_view(
        {"job": job, "version": number, "channel": _actor(body).channel})


@_guard
def start_preset(deps: Deps, body: dict, respond: Respond, client: Any) -> None:
    actor = _actor(body)
    req = requests.LaunchRequest(user=actor.user, preset=body["actions"][0]["value"],
                                  channel=actor.channel, request_key=actor.request_key)
    v, approval = requests.start_job(deps, req)
    _reply(respond, launched_text(v, approval, preset=v.spec.preset))


@_guard
def delete_preset(deps: Deps, body: dict, respond: Respond, client: Any) -> None:
    p = presets.delete_preset(deps, user=body["user"]["id"], name=body["actions"][0]["value"])
    _say(respond, Doc(title=f":wastebasket: Preset *{esc(p.name)}* deleted."))


def suggest_options(deps_source: DepsSource, body: dict) -> dict:
    """The options of an ``external_select``, for the channel the form was opened from; no
    options (rather than an error the menu can't show) anywhere the allow-list forbids."""
    try:
        deps = deps_source()
        deps.policy.check_slack_channel(_meta(body).get("channel"))
        return options.options_for_request(deps.catalog, lambda: presets.list_presets(deps),
                                           body)
    except Exception as exc:
        user_text(exc, log=log)  # logged with an id; a menu can only show nothing
        return {"options": []}


# -- modals: ``<callback_id>_ack`` answers the submission, ``<callback_id>_submit`` acts -----


def _meta(body: dict) -> dict:
    try:
        return json.loads(body["view"].get("private_metadata") or "{}")
    except ValueError:
        return {}


def _notify_user(client: Any, user: str, channel: str | None, text: str) -> None:
    """A view submission has no response_url: tell the user ephemerally in the channel, or
    — when Slack won't take that (``not_in_channel``, ``channel_not_found``, …) — in a DM.
    Someone who hears nothing submits again."""
    if channel:
        try:
            slack_call(client.chat_postEphemeral, channel=channel, user=user, text=text)
            return
        except ChatUndelivered:
            pass  # logged; the DM below
    slack_call(client.chat_postMessage, channel=user, text=text)


def _tell(client: Any, body: dict, work: Callable[[], str | None]) -> None:
    """Run a submission's work and tell its user how it went, whatever happens. ``work``
    answers ``None`` for a form its ack already refused: nothing more to say. Forms are held
    to the channel allow-list like commands (a form that names no channel is refused)."""
    try:
        text = work()
    except Exception as exc:
        text = ":warning: " + esc_keep_mentions(user_text(exc, log=log))
    if text is not None:
        try:
            _notify_user(client, body["user"]["id"], _meta(body).get("channel"), text)
        except ChatUndelivered:
            log.error("could not tell %s how their form went: %s", body["user"]["id"], text)


def start_choose_ack(deps_source: DepsSource, ack: Ack, body: dict, view: dict) -> None:
    deps = deps_source()
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


# Bolt runs lazy listeners whatever the ack answered, so each submit re-checks with the same
# function its ack used and does nothing when the form came back with errors.
def _form_errors(deps: Deps, body: dict) -> dict[str, str]:
    meta = _meta(body)
    try:
        algo_id = meta.get("algorithm") or deps.store.get_version(
            meta["job"], meta["version"]).spec.algorithm
        algorithm = deps.catalog.algorithm(algo_id)
    except (TrainbotError, KeyError):
        return {"pool": "This form is out of date; start again."}
    return forms.validate_form(algorithm, forms.read_values(body["view"]))[1]


def _answer(ack: Ack, errors: dict[str, str]) -> None:
    if errors:
        ack(response_action="errors", errors=errors)
    else:
        ack(response_action="clear")


def start_form_ack(deps_source: DepsSource, ack: Ack, body: dict, view: dict) -> None:
    _answer(ack, _form_errors(deps_source(), body))


rerun_form_ack = start_form_ack


def _launched(launch: Callable[[], tuple[Any, Any]]) -> str:
    v, approval = launch()
    return launched_text(v, approval)


def start_form_submit(deps_source: DepsSource, body: dict, client: Any) -> None:
    def work() -> str | None:
        deps = deps_source()
        if _form_errors(deps, body):
            return None
        meta, values = _meta(body), forms.read_values(body["view"])
        deps.policy.check_slack_channel(meta.get("channel"))
        algorithm = deps.catalog.algorithm(meta["algorithm"])
        params, _ = forms.validate_form(algorithm, values)
        req = requests.LaunchRequest(
            user=body["user"]["id"], algorithm=None if meta.get("preset") else algorithm.id,
            preset=meta.get("preset"), params=params, pool=values.get("pool") or meta.get("pool"),
            job_name=meta.get("name"), channel=meta.get("channel"),
            request_key=f"view:{body['view']['id']}",
        )
        return _launched(lambda: requests.start_job(deps, req))

    _tell(client, body, work)


def rerun_form_submit(deps_source: DepsSource, body: dict, client: Any) -> None:
    def work() -> str | None:
        deps = deps_source()
        if _form_errors(deps, body):
            return None
        meta, values = _meta(body), forms.read_values(body["view"])
        deps.policy.check_slack_channel(meta.get("channel"))
        base = deps.store.get_version(meta["job"], meta["version"])
        algorithm = deps.catalog.algorithm(base.spec.algorithm)
        params, _ = forms.validate_form(algorithm, values)
        # Only what the person changed counts as an override.
        changed = {k: raw for k, raw in params.items()
                   if algorithm.hyperparameter(k).coerce(raw) != base.spec.hyperparameters.get(k)}
        req = requests.LaunchRequest(user=body["user"]["id"], params=changed,
                                      pool=values.get("pool"), channel=meta.get("channel"),
                                      request_key=f"view:{body['view']['id']}")
        return _launched(lambda: requests.rerun(deps, req, job=meta["job"],
                                                 base_number=meta["version"]))

    _tell(client, body, work)


def _reason(body: dict) -> str:
    return (forms.read_values(body["view"]).get("reason") or "").strip()[:500]


def reject_reason_ack(deps_source: DepsSource, ack: Ack, body: dict, view: dict) -> None:
    _answer(ack, {} if _reason(body) else {"reason": "Say why, so the requester knows."})


def reject_reason_submit(deps_source: DepsSource, body: dict, client: Any) -> None:
    if not _reason(body):
        return

    def work() -> str:
        deps = deps_source()
        deps.policy.check_slack_channel(_meta(body).get("channel"))
        _, v = approvals.decide(deps, approval_id=_meta(body)["approval"],
                                user=body["user"]["id"], approve=False, note=_reason(body))
        return f":no_entry_sign: Rejected — {esc(v.label)} will not run."

    _tell(client, body, work)


def _preset_errors(deps: Deps, body: dict) -> dict[str, str]:
    name = forms.read_values(body["view"]).get("name", "")
    if not re.fullmatch(PRESET_NAME, name):
        return {"name": "Use 1-64 letters, digits, - or _."}
    try:
        presets.show_preset(deps, name)
    except NotFound:
        return {}
    return {"name": f"`{name}` exists; pick another."}


def save_preset_ack(deps_source: DepsSource, ack: Ack, body: dict, view: dict) -> None:
    _answer(ack, _preset_errors(deps_source(), body))


def save_preset_submit(deps_source: DepsSource, body: dict, client: Any) -> None:
    def work() -> str | None:
        deps = deps_source()
        if _preset_errors(deps, body):
            return None
        meta, values = _meta(body), forms.read_values(body["view"])
        deps.policy.check_slack_channel(meta.get("channel"))
        p = presets.save_preset(deps, user=body["user"]["id"], name=values.get("name", ""),
                                description=values.get("description"),
                                from_job=meta["job"], from_version=meta["version"])
        return (f":bookmark: Saved preset *{esc(p.name)}* — "
                f"`/train start --preset {esc(p.name)}`.")

    _tell(client, body, work)
