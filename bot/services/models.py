"""Models: register a completed training version in a model group, decide it exactly once.

A model version is recorded in the store first (the number comes from the store's atomic
counter; the same training version in the same group again returns the stored one), then in
the model registry (SageMaker Model Registry on AWS; nothing more locally), then its approval
card goes to the channel — each later step best effort or retried by registering again, so a
chat or registry failure never undoes or duplicates the stored model. The decision follows
the rerun approvals' rules: approvers only, not the person who registered it (unless
self-approval is allowed), once — a conditional write on the pending status.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import timedelta

from bot.domain import (
    Algorithm,
    BackendError,
    Conflict,
    InvalidInput,
    JobVersion,
    ModelStatus,
    ModelVersion,
    NotAllowed,
    NotFound,
    Status,
    TrainbotError,
)
from bot.domain.model import MODEL_GROUP_NAME
from bot.domain.sweep import best as best_trial
from bot.domain.sweep import trials_of
from bot.services.context import Deps
from bot.services.queries import algorithm_digest, get_version
from bot.services.versions import MAX_ATTEMPTS, notify, try_chat

__all__ = [
    "Registration",
    "check_can_decide",
    "decide_model",
    "default_group",
    "list_models",
    "register_model",
]

log = logging.getLogger("trainbot")

_GROUP = re.compile(MODEL_GROUP_NAME)
_NOT_GROUP_CHARS = re.compile(r"[^A-Za-z0-9]+")
MAX_GROUP = 63
MAX_NOTE = 500
# A registration whose card isn't there after this long was interrupted: registering the
# same version again posts it. Sooner, the first registration may still be posting it (a
# double click), and a second card would be one too many.
FINISH_AFTER = timedelta(minutes=2)


def default_group(job: str) -> str:
    """The group a job's models go to unless another is named: the job name, written as a
    SageMaker ModelPackageGroupName (letters, digits, single hyphens; at most 63)."""
    name = _NOT_GROUP_CHARS.sub("-", job).strip("-")[:MAX_GROUP].rstrip("-")
    return name or "models"


def _check_group(group: str) -> str:
    if not _GROUP.match(group) or len(group) > MAX_GROUP:
        raise InvalidInput(
            f"`{group[:70]}` is not a valid model group name.",
            hint="Use 1-63 letters, digits and hyphens, starting and ending with a letter or "
                 "digit (SageMaker's model package group names).")
    return group


@dataclass(frozen=True)
class Registration:
    model: ModelVersion
    # False: that training version was registered in that group before; this is that one.
    created: bool


def register_model(
    deps: Deps, job: str, number: int | None = None, *, group: str | None = None, user: str,
    channel: str | None,
) -> Registration:
    """Register version ``number`` of ``job`` (default: its best completed version by the
    algorithm's objective — a sweep's best trial) as the next version of ``group`` (default:
    the job's name), pending manual approval. Registering the same training version in the
    same group again returns the stored one (``created`` False), finishing what an
    interrupted registration left undone (the registry, the card)."""
    deps.policy.check_channel(channel)
    group = _check_group(group) if group is not None else default_group(job)
    version = (get_version(deps, job, number) if number is not None
               else _best_version(deps, job))
    if version.status is not Status.COMPLETED:
        raise InvalidInput(
            f"{version.label} hasn't completed (it is {version.status.value}); register it "
            "once it has.")
    if not version.artifacts.model:
        raise InvalidInput(f"{version.label} completed without a model artifact: there is "
                           "no model to register.")
    draft = _draft(deps, version, group=group, user=user, asked_in=channel)
    model, created = deps.store.add_model_version(draft)
    if model.pending and model.package_arn is None:
        model = _register_in_registry(deps, model)
    if model.pending and model.message_ts is None and (
            created or deps.clock.now() - model.registered_at >= FINISH_AFTER):
        ref, _ = try_chat(f"model card of {model.label}", lambda: deps.chat.model_registered(model))
        if ref is not None:
            model = _save(deps, model, channel=ref[0], message_ts=ref[1])
    return Registration(model, created)


def _best_version(deps: Deps, job: str) -> JobVersion:
    """The job's completed version (with a model) best by its algorithm's objective, the
    newest among equals; a sweep's best trial by the sweep's own objective; the latest
    version when none completed (the caller says why it can't be registered)."""
    versions = deps.store.list_versions(job)
    done = [v for v in versions if v.status is Status.COMPLETED and v.artifacts.model]
    if not done:
        return get_version(deps, job)
    try:
        sweep = deps.store.get_sweep(job)
    except NotFound:
        sweep = None
    if sweep is not None:
        top = best_trial(sweep.spec, trials_of(sweep.spec, done))
        if top is not None:
            return next(v for v in done if v.number == top.version)
    algorithm = deps.algorithms.find(done[-1].spec)
    if algorithm is None:
        return done[-1]
    objective = algorithm.objective
    best = done[-1]
    for v in reversed(done):
        value, leader = v.metrics.get(objective.metric), best.metrics.get(objective.metric)
        if value is not None and (leader is None or objective.better(value, leader)):
            best = v
    return best


def _draft(deps: Deps, version: JobVersion, *, group: str, user: str,
           asked_in: str | None) -> ModelVersion:
    """What is recorded about the model: the artifact, the training image, the metrics (the
    objective named), the algorithm exactly, and where it all came from."""
    algorithm = deps.algorithms.for_spec(version.spec)
    metric = algorithm.objective.metric
    digest = algorithm_digest(deps, version, algorithm)
    return ModelVersion(
        group=group, number=1, job=version.job, version=version.number,
        algorithm=version.spec.algorithm, algorithm_version=version.spec.algorithm_version,
        algorithm_digest=digest, artifact=version.artifacts.model or "",
        image=_image(deps, version, algorithm), metrics=dict(version.metrics),
        objective_metric=metric, objective_value=version.metrics.get(metric),
        lineage=_lineage(deps, version, algorithm, digest=digest, user=user),
        registered_by=user, registered_at=deps.clock.now(),
        # The card goes where the training version's card is — unless that channel is off
        # the allow-list (its buttons would be refused there) or there is none (a version
        # started from the CLI): then where the registration was asked.
        channel=(version.channel if version.channel and deps.policy.allows_channel(
            version.channel) else asked_in),
    )


def _image(deps: Deps, version: JobVersion, algorithm: Algorithm) -> str | None:
    """The container the version trained in: an image algorithm's own, else the backend's
    for its pool (None where runs use no image: local subprocesses)."""
    source = algorithm.source
    if source is not None and source.kind == "image":
        return source.image
    pool = deps.catalog.pools.get(version.spec.pool)
    if pool is None:  # the pool was removed from the configuration since
        return None
    return deps.compute.training_image(algorithm, pool)


def _lineage(deps: Deps, version: JobVersion, algorithm: Algorithm, *, digest: str | None,
             user: str) -> dict[str, str]:
    """job, version, parent, data channels (a chat file by its origin too), algorithm and
    its digest, preset, the training version's approval, who registered it."""
    out = {"job": version.job, "version": f"v{version.number}"}
    if version.parent is not None:
        out["parent"] = f"v{version.parent}"
    defaults = {c.name: c.default for c in algorithm.channels if c.default}
    for name in sorted(set(defaults) | set(version.spec.data)):
        out[f"data.{name}"] = version.spec.data.get(name) or defaults[name]
        origin = version.spec.data_origin.get(name)
        if origin:
            out[f"data_origin.{name}"] = origin
    out["algorithm"] = f"{version.spec.algorithm}@{version.spec.algorithm_version}"
    if digest:
        out["algorithm_digest"] = digest
    if version.spec.preset:
        out["preset"] = version.spec.preset
    if version.backend_job_name:
        out["training_job"] = version.backend_job_name
    if version.approval_id:
        out["approval"] = version.approval_id
    if version.approved_by:
        out["approved_by"] = version.approved_by
    out["registered_by"] = user
    return out


def _register_in_registry(deps: Deps, model: ModelVersion) -> ModelVersion:
    try:
        arn = deps.models.register(model)
    except TrainbotError as exc:
        raise BackendError(
            f"{model.label} is recorded, but the model registry didn't take it: {exc.message}",
            hint="Register it again (the same command) to retry; nothing is created twice.",
        ) from exc
    return _save(deps, model, package_arn=arn) if arn else model


def _save(deps: Deps, model: ModelVersion, **fields: object) -> ModelVersion:
    """Set bookkeeping ``fields`` (the package ARN, the card) without ever overwriting a
    decision taken meanwhile: the write is conditional on the status it read."""
    for _ in range(MAX_ATTEMPTS):
        current = deps.store.get_model_version(model.group, model.number)
        try:
            return deps.store.save_model_version(current.model_copy(update=fields),
                                                 expect_status=current.status)
        except Conflict:
            continue  # decided in between: keep the decision, set the fields on it
    raise Conflict(f"{model.label} kept changing; try again.")


def check_can_decide(deps: Deps, group: str, number: int, *, user: str) -> ModelVersion:
    """The pending model version ``user`` may decide; ``Conflict`` (decided already, by
    whom) or ``NotAllowed`` (who may) otherwise."""
    model = deps.store.get_model_version(group, number)
    if not model.pending:
        raise _already(model)
    policy = deps.policy
    if not policy.is_approver(user):
        who = _people(policy.approvers + policy.admins) or "nobody yet — set TRAINBOT_APPROVERS"
        raise NotAllowed(f"Only approvers can decide model versions: {who}.")
    if user == model.registered_by and not policy.allow_self_approval:
        raise NotAllowed(
            f"You can't decide {model.label}: you registered it.",
            hint="Ask another approver (self-approval is off: TRAINBOT_ALLOW_SELF_APPROVAL).")
    return model


# A repeated decision this much later re-tells the registry (a repair, not a double click).
RETELL_AFTER = timedelta(minutes=1)


def decide_model(deps: Deps, group: str, number: int, *, user: str, approve: bool,
                 note: str = "") -> ModelVersion:
    """Approve or reject a pending model version, once: a second decision — concurrent or
    a retry — is a ``Conflict`` naming who decided. The registry and the card follow.

    A model the registry hasn't taken yet (its registration failed) is registered first, so
    a decision never exists only in the store; and the same decision asked again tells the
    registry again, which repairs one that didn't reach it."""
    status = ModelStatus.APPROVED if approve else ModelStatus.REJECTED
    try:
        model = check_can_decide(deps, group, number, user=user)
    except Conflict:
        stored = deps.store.get_model_version(group, number)
        if (stored.status is status and deps.policy.is_approver(user)
                and stored.decided_at is not None
                and deps.clock.now() - stored.decided_at >= RETELL_AFTER):
            # Not a concurrent duplicate but a later retry: tell the registry again (an
            # idempotent update), which repairs a decision that didn't reach it.
            _tell_registry(deps, stored)
        raise
    if model.package_arn is None:
        model = _register_in_registry(deps, model)
    current = deps.store.get_model_version(group, number)
    # The decision's fields on the freshest record: the package and the card stay as saved.
    decided = current.model_copy(update={
        "status": status, "decided_by": user, "decided_at": deps.clock.now(),
        "note": note.strip()[:MAX_NOTE]})
    try:
        decided = deps.store.save_model_version(decided, expect_status=ModelStatus.PENDING)
    except Conflict:
        raise _already(deps.store.get_model_version(group, number)) from None
    problem = _tell_registry(deps, decided)
    notify(f"model decision on {decided.label}", lambda: deps.chat.model_decided(decided))
    if problem is not None:
        verb = "approve" if approve else "reject"
        raise BackendError(
            f"{decided.label} is {decided.status.value.lower()} here, but the model registry "
            f"didn't take the decision: {problem.message}",
            hint=f"Run `/train model {verb} {group} v{number}` again to tell it again.",
        ) from problem
    return decided


def _tell_registry(deps: Deps, model: ModelVersion) -> TrainbotError | None:
    try:
        deps.models.decide(model)
    except TrainbotError as exc:
        log.warning("the model registry didn't take the decision on %s: %s", model.label, exc)
        return exc
    return None


def list_models(deps: Deps, group: str | None = None) -> dict[str, list[ModelVersion]]:
    """Every group's versions (oldest first), or one group's. ``NotFound`` for an unknown
    group, naming the groups there are."""
    if group is None:
        return {g: deps.store.list_model_versions(g) for g in deps.store.list_model_groups()}
    try:
        return {group: deps.store.list_model_versions(group)}
    except NotFound:
        groups = deps.store.list_model_groups()
        raise NotFound(
            f"There is no model group `{group[:70]}`.",
            hint=("Groups: " + ", ".join(f"`{g}`" for g in groups) + "." if groups else
                  "No models are registered yet: `/train model register JOB [vN]`."),
        ) from None


def _already(model: ModelVersion) -> Conflict:
    how = "approved" if model.status is ModelStatus.APPROVED else "rejected"
    return Conflict(f"{model.label} was already {how} by <@{model.decided_by}>.")


def _people(ids: list[str]) -> str:
    return ", ".join(f"<!subteam^{i}>" if i.startswith("S") else f"<@{i}>"
                     for i in dict.fromkeys(ids))
