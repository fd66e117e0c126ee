"""SageMaker delivers state changes at least once and in no guaranteed order.

Whatever interleaving, duplication or delay, a version ends in its true terminal state with
the right metrics, and a late InProgress never overwrites Completed.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.domain import Status, TrainingJobStateChange
from bot.services.requests import LaunchRequest, start_job
from bot.services.state_changes import record_state_change
from tests.unit.conftest import make_deps

EVENTS = Path(__file__).resolve().parents[1] / "events"


def _sample(name: str, job_name: str) -> TrainingJobStateChange:
    raw = json.loads((EVENTS / name).read_text())
    raw = copy.deepcopy(raw)
    raw["detail"]["TrainingJobName"] = job_name
    return TrainingJobStateChange.model_validate(raw)


def _true_sequence(job_name: str, *, fails: bool) -> list[TrainingJobStateChange]:
    starting = _sample("sagemaker_training_job_state_change_in_progress.json", job_name)
    starting = starting.model_copy(update={"detail": starting.detail.model_copy(
        update={"secondary_status": "Starting"})})
    training = _sample("sagemaker_training_job_state_change_in_progress.json", job_name)
    end = _sample("sagemaker_training_job_state_change_failed.json" if fails
                  else "sagemaker_training_job_state_change.json", job_name)
    return [starting, training, end]


def test_documented_sample_completes_a_version_with_its_metrics() -> None:
    deps = make_deps()
    v, _ = start_job(deps, LaunchRequest(user="U1", algorithm="toy", pool="local-cpu"))
    done = _sample("sagemaker_training_job_state_change.json", v.backend_job_name or "")
    after = record_state_change(deps, done)
    assert after is not None and after.status is Status.COMPLETED
    assert after.metrics == {m.name: m.value for m in done.detail.final_metrics}
    assert after.artifacts.model == done.detail.model_uri
    assert after.billable_seconds == done.detail.billable_seconds
    assert record_state_change(deps, done).revision == after.revision  # duplicate: no write


@settings(max_examples=60, deadline=None)
@given(fails=st.booleans(), data=st.data())
def test_any_interleaving_ends_in_the_true_terminal_state(fails: bool, data: st.DataObject) -> None:
    deps = make_deps()
    v, _ = start_job(deps, LaunchRequest(user="U1", algorithm="toy", pool="local-cpu"))
    truth = _true_sequence(v.backend_job_name or "", fails=fails)
    deliveries = data.draw(st.lists(st.sampled_from(range(len(truth))), min_size=0, max_size=8))
    order = data.draw(st.permutations([*range(len(truth)), *deliveries]))
    for i in order:
        record_state_change(deps, truth[i])
    final = deps.store.get_version(v.job, v.number)
    expected = truth[-1].detail
    assert final.status is expected.domain_status
    if not fails:
        assert final.metrics == {m.name: m.value for m in expected.final_metrics}
    else:
        assert final.failure_reason == expected.failure_reason
    # history only moves forward
    ranks = [h.status for h in final.history]
    assert ranks.count(final.status) == 1 and ranks[-1] is final.status


def test_events_for_unknown_jobs_are_dropped() -> None:
    deps = make_deps()
    event = _sample("sagemaker_training_job_state_change.json", "trainbot-unknown-v1-abcd")
    assert record_state_change(deps, event) is None
