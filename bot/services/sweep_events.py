"""SageMaker automatic model tuning reported by events: a trial's training job creates its
version the first time it is seen (:func:`adopt_trial`); the tuning job's state changes move
the sweep (:func:`record_tuning_change`)."""

from __future__ import annotations

import json
import logging
import re

from bot.domain import (
    Conflict,
    JobVersion,
    StaleWrite,
    Status,
    StatusChange,
    TrainbotError,
    TrainingJobDetail,
)
from bot.domain.algorithm import HPValue
from bot.domain.sweep import trial_request_key
from bot.services.context import Deps
from bot.services.launching import charge_for
from bot.services.sweep_records import any_value
from bot.services.versions import MAX_ATTEMPTS

__all__ = ["adopt_trial"]

log = logging.getLogger("trainbot")
_TRIAL_NUMBER = re.compile(r"-(\d{3})-[0-9a-f]{8}$")


def adopt_trial(deps: Deps, detail: TrainingJobDetail) -> JobVersion | None:
    """The version of a tuning job's trial trainbot hasn't seen yet (SageMaker launched it):
    created from the event's hyperparameters as trial ``NNN − 1`` of the sweep, with its
    backend name claimed, so the event then applies to it like to any version."""
    tuning = detail.tuning_job_name
    if not tuning:
        return None
    sweep = deps.store.find_sweep_by_backend_name(tuning)
    if sweep is None:
        return None
    match = _TRIAL_NUMBER.search(detail.name)
    if match is None:
        log.warning("tuning trial %s has no trial number in its name", detail.name)
        return None
    number = int(match.group(1)) - 1
    algorithm = deps.algorithms.for_spec(sweep.spec.trial_spec(
        {r.name: any_value(r) for r in sweep.spec.ranges}))
    params: dict[str, HPValue] = {}
    for r in sweep.spec.ranges:
        raw = detail.hyperparameters.get(r.name)
        if raw is None:
            log.warning("trial %s lacks %s", detail.name, r.name)
            return None
        try:
            params[r.name] = algorithm.hyperparameter(r.name).coerce(_decoded(raw))
            spec = sweep.spec.trial_spec(params) if len(params) == len(sweep.spec.ranges) \
                else None
        except (ValueError, TrainbotError) as exc:  # never retried for ever: it won't change
            log.warning("trial %s of %s: %s=%r can't be read (%s); dropped", detail.name,
                        sweep.name, r.name, raw, exc)
            return None
    now = deps.clock.now()
    at = detail.creation_time or now
    draft = JobVersion(
        job=sweep.name, number=0, parent=None, spec=spec or sweep.spec.trial_spec(params),
        requested_by=sweep.requested_by, approved_by=sweep.approved_by, status=Status.QUEUED,
        trial=number, history=[StatusChange(status=Status.QUEUED, at=at,
                                            message=f"trial {number} of sweep {sweep.name}")],
        created_at=at, updated_at=at, request_key=trial_request_key(sweep.name, number),
        channel=sweep.channel,
        estimated_cost_usd=deps.catalog.pool(sweep.spec.pool).estimate_cost(
            sweep.spec.max_runtime_s))
    version, _ = deps.store.add_version(draft)
    for _ in range(MAX_ATTEMPTS):
        if version.backend_job_name:
            break
        try:
            pool = deps.catalog.pool(version.spec.pool)
            claimed = deps.store.claim_launch(version.model_copy(update={
                "backend_job_name": detail.name, "backend": deps.compute.name,
                **charge_for(deps, version, pool)}))
            version = claimed if isinstance(claimed, JobVersion) else version
        except StaleWrite:
            version = deps.store.get_version(version.job, version.number)
        except Conflict:
            break
    return deps.store.find_by_backend_name(detail.name)


def _decoded(raw: str) -> str:
    """A trial's hyperparameter as SageMaker hands it to a script-mode job: each value
    JSON-encoded (``"\\"sgd\\""``, ``"0.01"``); a value that isn't JSON as it is."""
    try:
        value = json.loads(raw)
    except ValueError:
        return raw
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else raw
