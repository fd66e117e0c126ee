"""What `/train`, the buttons and the modals do once acked — as translations only.

Every slash command, button and form submission becomes a command (:mod:`bot.commands`)
run by :func:`bot.dispatch.execute`, the path `trainbot` takes too; this module turns Slack
payloads (a command's text, a button's value, a form's fields) into those commands and the
replies into Slack answers (an ephemeral message, a modal, field errors). Every request is
held to the channel allow-list first.

``bot.slack.app`` registers the listeners and imports this module only when one of them
runs, so a cold Lambda acks without importing the domain, the services or the store. The
functions take a :data:`DepsSource` — the bot's dependencies are built on first use, here.

View submissions validate in the ack (cheap: the catalog, and for a team's own algorithm one
store read, cached for good per version) so field errors come back inline
(``response_action: errors``) instead of as a failed submission.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from typing import Any

from bot.commands import (
    Approve,
    Command,
    Eval,
    Help,
    Lineage,
    Logs,
    ModelApprove,
    ModelRegister,
    PresetDelete,
    PresetSave,
    Reject,
    Rerun,
    Start,
    StartForm,
    Stop,
    parse,
)
from bot.dispatch import Actor, Reply, execute
from bot.domain import (
    Algorithm,
    ChatUndelivered,
    InvalidInput,
    JobVersion,
    NotFound,
    Status,
    TrainbotError,
)
from bot.domain.approval import Approval
from bot.domain.job import validate_job_name
from bot.domain.preset import PRESET_NAME
from bot.domain.sweep import Sweep, SweepStatus
from bot.error_text import user_text
from bot.services import approvals, presets
from bot.services.context import Deps
from bot.slack import forms, options
from bot.slack.blocks import fallback_text, render_blocks
from bot.slack.hints import card_hint
from bot.slack.loading import external_id, message_view
from bot.slack.notifier import slack_call
from bot.views.mrkdwn import code, esc, esc_keep_mentions

__all__ = ["BUTTON_COMMANDS", "DepsSource", "open_start_modal", "press", "run_command",
           "sweep_text"]

log = logging.getLogger("trainbot.slack")
Respond = Callable[..., Any]
Ack = Callable[..., None]
DepsSource = Callable[[], Deps]
# What the user hears: the text, and the blocks when there are any.
Message = tuple[str, list[dict] | None]


def _ref(value: str) -> tuple[str, int]:
    """A version button's value: ``JOB:N``."""
    job, _, number = value.rpartition(":")
    return job, int(number)


def _actor(body: dict) -> Actor:
    channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get(
        "channel_id")
    trigger = body.get("trigger_id")
    team = (body.get("team") or {}).get("id", "")
    return Actor(user=body["user"]["id"], channel=channel,
                 request_key=f"{team}:{trigger}" if trigger else None, interactive=True)


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


def _fail(respond: Respond, exc: Exception) -> None:
    _reply(respond, _problem(exc))


def _problem(exc: Exception) -> str:
    return ":warning: " + esc_keep_mentions(user_text(exc, log=log))


def _message(cmd: Command, reply: Reply) -> Message:
    """A reply as Slack shows it. A launch's card is in the channel already (or its absence
    is explained): the requester hears one line about it."""
    if reply.public and reply.version is not None:
        preset = cmd.preset if isinstance(cmd, Start) else None
        return launched_text(reply.version, reply.approval, preset=preset), None
    sweep = _sweep_of(reply)
    if sweep is not None and (reply.public or isinstance(cmd, Stop)):
        return sweep_text(sweep), None
    return fallback_text(reply.doc), render_blocks(reply.doc)


def _sweep_of(reply: Reply) -> Sweep | None:
    """The sweep a reply is about (``dispatch.sweep_reply``'s data), if it is one."""
    data = reply.data
    if isinstance(data, tuple) and data and isinstance(data[0], Sweep):
        return data[0]
    return None


def sweep_text(sweep: Sweep) -> str:
    """What the requester (or whoever stopped it) hears: the card is in the channel."""
    name = esc(sweep.name)
    if sweep.status is SweepStatus.STOPPING:
        return (f":double_vertical_bar: Stopping sweep *{name}*: its running trials are being "
                "stopped; the card says when it has ended (its best so far stays).")
    if sweep.status.terminal:
        return (f"Sweep *{name}* is {sweep.status.value.lower()}"
                + (" — its card is in the channel." if sweep.message_ts else "."))
    return (f":mag: Sweep *{name}* is running: {sweep.spec.trials} trials, "
            f"{sweep.spec.parallel} at a time — its card is in the channel.")


def _run(deps: Deps, cmd: Command, actor: Actor, respond: Respond) -> None:
    """Run a command and answer through the ``response_url`` — never a silent drop."""
    try:
        _reply(respond, *_message(cmd, execute(deps, cmd, actor)))
    except Exception as exc:
        _fail(respond, exc)


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
                text = _problem(exc)
                if _fill_modal(client, body["trigger_id"], message_view(title, text)):
                    _reply(respond, text)
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
    if isinstance(cmd, Help):
        return  # answered in the ack
    if isinstance(cmd, StartForm):
        try:
            problem = open_start_modal(deps, client, command["trigger_id"], actor)
        except Exception as exc:
            text = _problem(exc)
            _fill_modal(client, command["trigger_id"], message_view("Start training", text))
            _reply(respond, text)
            return
        if problem:
            _reply(respond, _modal_problem(problem))
        return
    _run(deps, cmd, actor, respond)


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
    view = forms.start_choice_view(deps.algorithms.all(), list(deps.catalog.pools.values()),
                                   presets.list_presets(deps), {"channel": actor.channel})
    return _fill_modal(client, trigger_id, view)


# -- buttons -------------------------------------------------------------------------------

# Each button stands for a command: its action_id → the command, built from its value.
# The Delete button is behind Slack's own confirm dialog, so it deletes at once.
BUTTON_COMMANDS: dict[str, Callable[[str], Command]] = {
    "show_lineage": lambda value: Lineage(*_ref(value)),
    "show_logs": lambda value: Logs(*_ref(value)),
    "show_eval": lambda value: Eval(*_ref(value)),
    "stop_version": lambda value: Stop(*_ref(value)),
    "approve_request": lambda value: Approve(request_id=value),
    "start_preset": lambda value: Start(preset=value),
    "delete_preset": lambda value: PresetDelete(name=value, confirmed=True),
    "register_model": lambda value: ModelRegister(*_ref(value)),
    "approve_model": lambda value: ModelApprove(*_ref(value)),  # GROUP:N
    # A sweep's card: its name alone (no version) stops the whole sweep. Slack's confirm
    # dialog comes first (the card's button carries it).
    "stop_sweep": lambda value: Stop(job=value),
}


def press(action_id: str, deps_source: DepsSource, body: dict, respond: Respond) -> None:
    """A button that stands for a command: run it as `/train` would, answer ephemerally."""
    try:
        deps = deps_source()
        actor = _actor(body)
        deps.policy.check_slack_channel(actor.channel)
        cmd = BUTTON_COMMANDS[action_id](body["actions"][0]["value"])
    except Exception as exc:
        _fail(respond, exc)
        return
    _run(deps, cmd, actor, respond)


# Buttons that open a form (one function per action_id): the form's submission is the
# command; the button only checks what it can before the form is filled in.


@_modal_guard("Reject request")
def reject_request(deps: Deps, body: dict, respond: Respond, client: Any) -> dict:
    approval_id = body["actions"][0]["value"]
    approvals.check_can_decide(deps, approval_id=approval_id, user=body["user"]["id"])
    return forms.reason_view(approval_id, {"channel": _actor(body).channel})


@_modal_guard("Rerun")
def rerun_version(deps: Deps, body: dict, respond: Respond, client: Any) -> dict:
    job, number = _ref(body["actions"][0]["value"])
    v = deps.store.get_version(job, number)
    algorithm = deps.algorithms.for_spec(v.spec)  # a rerun runs exactly what it ran
    meta = {"job": job, "version": number, "channel": _actor(body).channel}
    return forms.hyperparameter_view(
        algorithm, dict(v.spec.hyperparameters), meta, callback_id="rerun_form",
        title=forms.rerun_title(job, number), pools=list(deps.catalog.pools), pool=v.spec.pool,
        data=dict(v.spec.data), data_origin=dict(v.spec.data_origin))


@_modal_guard("Save as preset")
def save_preset(deps: Deps, body: dict, respond: Respond, client: Any) -> dict:
    job, number = _ref(body["actions"][0]["value"])
    deps.store.get_version(job, number)
    return forms.save_preset_view(
        {"job": job, "version": number, "channel": _actor(body).channel})


def suggest_options(deps_source: DepsSource, body: dict) -> dict:
    """The options of an ``external_select``, for the channel the form was opened from; no
    options (rather than an error the menu can't show) anywhere the allow-list forbids."""
    try:
        deps = deps_source()
        deps.policy.check_slack_channel(_meta(body).get("channel"))
        return options.options_for_request(_menus(deps), body)
    except Exception as exc:
        user_text(exc, log=log)  # logged with an id; a menu can only show nothing
        return {"options": []}


def _menus(deps: Deps) -> options.Menus:
    def algorithm_of(meta: dict) -> Algorithm | None:
        try:
            return _form_algorithm(deps, meta)
        except (TrainbotError, KeyError, TypeError):
            return None

    return options.Menus(algorithms=deps.algorithms.all, pools=deps.catalog.pools.values(),
                         presets=lambda: presets.list_presets(deps), algorithm_of=algorithm_of)


def _form_algorithm(deps: Deps, meta: dict) -> Algorithm:
    """The algorithm a form was built for: the one its metadata names — a registered one at
    the version it pinned (``digest``) —, else the rerun version's exactly."""
    if meta.get("algorithm"):
        digest = meta.get("digest")
        return deps.algorithms.exact(str(meta["algorithm"]),
                                     digest if isinstance(digest, str) else None)
    return deps.algorithms.for_spec(deps.store.get_version(meta["job"], meta["version"]).spec)


# -- modals: ``<callback_id>_ack`` answers the submission, ``<callback_id>_submit`` runs the
# command the form stands for ------------------------------------------------------------------


def _meta(body: dict) -> dict:
    try:
        return json.loads(body["view"].get("private_metadata") or "{}")
    except ValueError:
        return {}


def _notify_user(client: Any, user: str, channel: str | None, message: Message) -> None:
    """A view submission has no response_url: tell the user ephemerally in the channel, or
    — when Slack won't take that (``not_in_channel``, ``channel_not_found``, …) — in a DM,
    in plain text. Someone who hears nothing submits again."""
    text, blocks = message
    if channel:
        try:
            slack_call(client.chat_postEphemeral, channel=channel, user=user, text=text,
                       **({"blocks": blocks} if blocks else {}))
            return
        except ChatUndelivered:
            pass  # logged; the DM below
    slack_call(client.chat_postMessage, channel=user, text=text)


def _submit(deps_source: DepsSource, body: dict, client: Any,
            to_command: Callable[[Deps, dict], Command | None]) -> None:
    """Run the command a submitted form stands for and tell its user how it went, whatever
    happens. ``to_command`` reads the form; None for a form its ack already refused: nothing
    more to say. Forms are held to the channel allow-list like commands (a form that names no
    channel is refused)."""
    try:
        deps = deps_source()
        cmd = to_command(deps, body)
        if cmd is None:
            return
        actor = Actor(user=body["user"]["id"], channel=_meta(body).get("channel"),
                      request_key=f"view:{body['view']['id']}", interactive=True)
        deps.policy.check_slack_channel(actor.channel)
        message = _message(cmd, execute(deps, cmd, actor))
    except Exception as exc:
        message = (_problem(exc), None)
    try:
        _notify_user(client, body["user"]["id"], _meta(body).get("channel"), message)
    except ChatUndelivered:
        log.error("could not tell %s how their form went: %s", body["user"]["id"], message[0])


def start_choose_ack(deps_source: DepsSource, ack: Ack, body: dict, view: dict) -> None:
    deps = deps_source()
    values = forms.read_values(view)
    meta = _meta(body)
    kind, _, ident = values.get("source", "").partition(":")
    try:
        if kind == "preset":
            preset = presets.show_preset(deps, ident)
            algorithm = deps.algorithms.for_spec(preset.spec)
            current = dict(preset.spec.hyperparameters)
            pool = values.get("pool") or preset.spec.pool
        else:
            algorithm = deps.algorithms.get(ident)
            current = algorithm.defaults()
            pool = values.get("pool") or deps.catalog.default_pool
    except TrainbotError as exc:
        ack(response_action="errors", errors={"source": exc.message[:150]})
        return
    name = values.get("name")
    if name:
        try:
            validate_job_name(name)
        except TrainbotError as exc:
            ack(response_action="errors", errors={"name": exc.message[:150]})
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
        algorithm = _form_algorithm(deps, meta)
    except (TrainbotError, KeyError, TypeError):
        return {"pool": "This form is out of date; start again."}
    values = forms.read_values(body["view"])
    return {**forms.validate_form(algorithm, values)[1],
            **forms.read_data(values, _form_data(deps, meta))[1]}


def _form_data(deps: Deps, meta: dict) -> dict[str, str]:
    """The data a rerun form started from (a start form starts from none)."""
    if meta.get("job") and meta.get("version"):
        return dict(deps.store.get_version(meta["job"], meta["version"]).spec.data)
    return {}


def _answer(ack: Ack, errors: dict[str, str]) -> None:
    if errors:
        ack(response_action="errors", errors=errors)
    else:
        ack(response_action="clear")


def start_form_ack(deps_source: DepsSource, ack: Ack, body: dict, view: dict) -> None:
    _answer(ack, _form_errors(deps_source(), body))


rerun_form_ack = start_form_ack


def _start_command(deps: Deps, body: dict) -> Start | None:
    if _form_errors(deps, body):
        return None
    meta, values = _meta(body), forms.read_values(body["view"])
    algorithm = _form_algorithm(deps, meta)
    params, _ = forms.validate_form(algorithm, values)
    data, _ = forms.read_data(values)
    return Start(algorithm=None if meta.get("preset") else algorithm.id,
                 preset=meta.get("preset"), params=params, data=data,
                 pool=values.get("pool") or meta.get("pool"), job_name=meta.get("name"))


def _rerun_command(deps: Deps, body: dict) -> Rerun | None:
    if _form_errors(deps, body):
        return None
    meta, values = _meta(body), forms.read_values(body["view"])
    base = deps.store.get_version(meta["job"], meta["version"])
    algorithm = deps.algorithms.for_spec(base.spec)
    params, _ = forms.validate_form(algorithm, values)
    # Only what the person changed counts as an override.
    changed = {k: raw for k, raw in params.items()
               if algorithm.hyperparameter(k).coerce(raw) != base.spec.hyperparameters.get(k)}
    data, _ = forms.read_data(values, dict(base.spec.data))
    return Rerun(job=meta["job"], version=meta["version"], params=changed, data=data,
                 pool=values.get("pool"))


def start_form_submit(deps_source: DepsSource, body: dict, client: Any) -> None:
    _submit(deps_source, body, client, _start_command)


def rerun_form_submit(deps_source: DepsSource, body: dict, client: Any) -> None:
    _submit(deps_source, body, client, _rerun_command)


def _reason(body: dict) -> str:
    return (forms.read_values(body["view"]).get("reason") or "").strip()[:500]


def reject_reason_ack(deps_source: DepsSource, ack: Ack, body: dict, view: dict) -> None:
    _answer(ack, {} if _reason(body) else {"reason": "Say why, so the requester knows."})


def _reject_command(deps: Deps, body: dict) -> Reject | None:
    reason = _reason(body)
    return Reject(request_id=_meta(body)["approval"], reason=reason) if reason else None


def reject_reason_submit(deps_source: DepsSource, body: dict, client: Any) -> None:
    _submit(deps_source, body, client, _reject_command)


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


def _save_preset_command(deps: Deps, body: dict) -> PresetSave | None:
    if _preset_errors(deps, body):
        return None
    meta, values = _meta(body), forms.read_values(body["view"])
    return PresetSave(name=values.get("name", ""), description=values.get("description"),
                      from_job=meta["job"], from_version=meta["version"])


def save_preset_submit(deps_source: DepsSource, body: dict, client: Any) -> None:
    _submit(deps_source, body, client, _save_preset_command)
