"""SageMaker tuning-job events and tuning trials' training-job events: the fixtures (shaped
after AWS's EventBridge examples and DescribeHyperParameterTuningJob / DescribeTrainingJob)
parse into the domain models, and ``functions.job_events`` sends each kind where it goes,
once per change."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from aws_lambda_powertools.utilities.parser import parse
from moto import mock_aws

from bot.domain.events import (
    TUNING_DETAIL_TYPE,
    TrainingJobDetail,
    TrainingJobStateChange,
    TuningJobDetail,
    TuningJobStateChange,
)
from functions import job_events, runtime
from functions.local_invoke import LocalContext

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")

EVENTS = Path(__file__).resolve().parents[1] / "events"
TUNING = "trainbot-churn-sweep-9f3a"


def load(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / f"{name}.json").read_text())


def ms(value: int) -> datetime:
    return datetime.fromtimestamp(value / 1000, tz=UTC)


# -- the tuning job's events ------------------------------------------------------------------

def test_a_completed_tuning_job_event_parses_with_its_best_trial() -> None:
    event = load("sagemaker_hyperparameter_tuning_job_state_change")
    change = parse(event=event, model=job_events.SageMakerTuningJobEvent).to_domain()
    assert isinstance(change, TuningJobStateChange)
    assert change.detail_type == TUNING_DETAIL_TYPE and change.source == "aws.sagemaker"
    detail = change.detail
    assert detail.name == TUNING and detail.status == "Completed" and detail.ended
    assert detail.arn and detail.arn.endswith(f":hyper-parameter-tuning-job/{TUNING}")
    assert detail.failure_reason is None
    best = detail.best_training_job
    assert best is not None and best.name == f"{TUNING}-005-8d2e61fa"
    assert best.status == "Completed" and best.objective_status == "Succeeded"
    assert best.objective is not None
    assert (best.objective.name, best.objective.value, best.objective.type) == (
        "validation:accuracy", pytest.approx(0.9649), "Maximize")
    assert best.tuned_hyperparameters == {"learning_rate": "0.07341229805350304",
                                          "max_leaf_nodes": "23"}
    assert best.end_time == ms(1741952713000)
    counts = detail.training_job_counters
    assert (counts.completed, counts.in_progress, counts.stopped, counts.non_retryable_error) == (
        7, 0, 1, 0)
    assert (detail.objective_counters.succeeded, detail.objective_counters.failed) == (7, 1)
    assert detail.creation_time == ms(1741950000123)
    assert detail.end_time == ms(1741954683000)
    assert detail.last_modified == ms(1741954685456)
    assert detail.last_modified.tzinfo is UTC
    assert detail.tags["trainbot:sweep"] == "churn-sweep"


def test_an_in_progress_event_has_no_best_trial_yet_and_times_as_digit_strings() -> None:
    """AWS's own example writes the times as strings of epoch milliseconds, and an event
    sent before any trial ended carries an empty ``BestTrainingJob``."""
    detail = TuningJobStateChange.model_validate(
        load("sagemaker_hyperparameter_tuning_job_state_change_in_progress")).detail
    assert detail.status == "InProgress" and not detail.ended
    assert detail.best_training_job is None
    assert detail.creation_time == ms(1741950000123)
    assert detail.last_modified == ms(1741950002450)
    assert detail.end_time is None
    assert detail.training_job_counters.in_progress == 2
    assert detail.objective_counters.pending == 2


def test_a_failed_tuning_job_says_why() -> None:
    detail = TuningJobStateChange.model_validate(
        load("sagemaker_hyperparameter_tuning_job_state_change_failed")).detail
    assert detail.status == "Failed" and detail.ended
    assert detail.failure_reason and "too many training jobs failed" in detail.failure_reason
    assert detail.training_job_counters.non_retryable_error == 3
    assert detail.best_training_job is None and detail.tags == {}


def test_missing_or_null_counters_read_as_zeros() -> None:
    detail = TuningJobDetail.model_validate({
        "HyperParameterTuningJobName": TUNING, "HyperParameterTuningJobStatus": "Stopping",
        "TrainingJobStatusCounters": None, "BestTrainingJob": None, "Tags": None})
    assert detail.training_job_counters.completed == 0
    assert detail.objective_counters.succeeded == 0
    assert detail.best_training_job is None and detail.tags == {}
    assert detail.creation_time is None and not detail.ended


def test_describe_output_parses_too() -> None:
    """boto3's DescribeHyperParameterTuningJob (datetimes, no tags) reads the same."""
    at = datetime(2025, 3, 14, 12, 0, tzinfo=UTC)
    detail = TuningJobDetail.model_validate({
        "HyperParameterTuningJobName": TUNING, "HyperParameterTuningJobArn": "arn:x",
        "HyperParameterTuningJobStatus": "InProgress", "CreationTime": at,
        "LastModifiedTime": at, "HyperParameterTuningJobConfig": {"Strategy": "Bayesian"},
        "TrainingJobStatusCounters": {"Completed": 1}, "ObjectiveStatusCounters": {}})
    assert detail.creation_time == at and detail.training_job_counters.completed == 1


# -- a trial's training-job events ------------------------------------------------------------

def test_a_trial_event_names_its_tuning_job_and_carries_its_hyperparameters() -> None:
    event = load("sagemaker_training_job_state_change_tuning_trial")
    change = parse(event=event, model=job_events.SageMakerTrainingJobEvent).to_domain()
    assert isinstance(change, TrainingJobStateChange)
    detail = change.detail
    assert detail.name == f"{TUNING}-005-8d2e61fa"
    assert detail.tuning_job_arn and detail.tuning_job_arn.endswith(TUNING)
    assert detail.tuning_job_name == TUNING
    hps = detail.hyperparameters
    assert hps["learning_rate"] == "0.07341229805350304" and hps["max_leaf_nodes"] == "23"
    assert hps["_tuning_objective_metric"] == "validation:accuracy"
    assert json.loads(hps["label_column"]) == "churned"  # script mode: JSON-encoded
    assert detail.tags["trainbot:sweep"] == "churn-sweep"
    assert detail.billable_seconds == 163 and detail.domain_status.value == "COMPLETED"
    assert detail.model_uri and detail.model_uri.endswith(
        "churn-sweep/trainbot-churn-sweep-9f3a-005-8d2e61fa/output/model.tar.gz")


def test_an_in_progress_trial_event_too() -> None:
    detail = TrainingJobStateChange.model_validate(
        load("sagemaker_training_job_state_change_tuning_trial_in_progress")).detail
    assert detail.tuning_job_name == TUNING
    assert detail.hyperparameters["max_leaf_nodes"] == "57"
    assert detail.domain_status.value == "TRAINING"


def test_the_tuning_job_name_keeps_its_case_when_the_arn_lowers_it() -> None:
    """SageMaker may write names in ARNs in lower case; the trial's own name keeps the case."""
    detail = TrainingJobDetail.model_validate({
        "TrainingJobName": "trainbot-Churn-9f3a-002-0a1b2c3d", "TrainingJobStatus": "InProgress",
        "TuningJobArn": "arn:aws:sagemaker:us-east-1:123456789012:"
                        "hyper-parameter-tuning-job/trainbot-churn-9f3a"})
    assert detail.tuning_job_name == "trainbot-Churn-9f3a"
    odd = detail.model_copy(update={"name": "renamed"})
    assert odd.tuning_job_name == "trainbot-churn-9f3a"  # not a trial's name: the ARN's


def test_a_plain_version_event_has_no_tuning_job() -> None:
    detail = TrainingJobStateChange.model_validate(
        load("sagemaker_training_job_state_change")).detail
    assert detail.tuning_job_arn is None and detail.tuning_job_name is None
    assert detail.hyperparameters["epochs"] == "5"
    broken = detail.model_copy(update={"tuning_job_arn": "not-an-arn"})
    assert broken.tuning_job_name is None
    assert TrainingJobDetail.model_validate(
        {"TrainingJobName": "x", "TrainingJobStatus": "InProgress",
         "HyperParameters": None}).hyperparameters == {}


# -- functions.job_events ---------------------------------------------------------------------

@pytest.fixture
def routed(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, list[Any]]]:
    """job_events with the services replaced: what each got."""
    import bot.services.state_changes as state_changes
    import bot.services.tuning_events as sweeps

    calls: dict[str, list[Any]] = {"tuning": [], "training": []}
    deps = object()

    def record_tuning_change(got: object, change: TuningJobStateChange) -> Any:
        assert got is deps
        calls["tuning"].append(change)
        if change.detail.name != TUNING:
            return None
        return SimpleNamespace(name="churn-sweep", status=SimpleNamespace(value="COMPLETED"),
                               revision=len(calls["tuning"]))

    def record_state_change(got: object, change: TrainingJobStateChange) -> Any:
        calls["training"].append(change)
        return None

    monkeypatch.setattr(sweeps, "record_tuning_change", record_tuning_change)
    monkeypatch.setattr(state_changes, "record_state_change", record_state_change)
    monkeypatch.setattr(runtime, "worker", lambda **_: SimpleNamespace(deps=deps))
    runtime.reset()
    yield calls
    runtime.reset()


def context() -> LocalContext:
    return LocalContext("trainbot-test-jobEvents", region="us-east-1")


def test_a_tuning_event_goes_to_the_sweeps_service(routed: dict[str, list[Any]]) -> None:
    event = load("sagemaker_hyperparameter_tuning_job_state_change")
    result = job_events.handler(event, context())
    assert result == {"outcome": "applied", "sweep": "churn-sweep", "status": "COMPLETED",
                      "revision": 1}
    [change] = routed["tuning"]
    assert isinstance(change, TuningJobStateChange) and change.id == event["id"]
    assert change.detail.best_training_job is not None
    assert routed["training"] == []


def test_a_trial_event_goes_to_the_state_change_service(routed: dict[str, list[Any]]) -> None:
    result = job_events.handler(load("sagemaker_training_job_state_change_tuning_trial"),
                                context())
    assert result == {"outcome": "unknown job", "training_job": f"{TUNING}-005-8d2e61fa"}
    [change] = routed["training"]
    assert change.detail.tuning_job_name == TUNING
    assert routed["tuning"] == []


def test_an_unknown_tuning_job_is_reported_as_such(routed: dict[str, list[Any]]) -> None:
    event = load("sagemaker_hyperparameter_tuning_job_state_change_failed")
    event["detail"]["HyperParameterTuningJobName"] = "trainbot-someone-else-0000"
    assert job_events.handler(event, context()) == {
        "outcome": "unknown tuning job", "tuning_job": "trainbot-someone-else-0000"}


@pytest.mark.parametrize("spoil", [
    lambda e: e["detail"].pop("HyperParameterTuningJobStatus"),
    lambda e: e["detail"].pop("HyperParameterTuningJobName"),
    lambda e: e.update(source="aws.events"),
    lambda e: e["detail"].update(TrainingJobStatusCounters={"Completed": "many"}),
])
def test_an_unparseable_tuning_event_is_rejected(routed: dict[str, list[Any]], spoil: Any) -> None:
    event = load("sagemaker_hyperparameter_tuning_job_state_change")
    spoil(event)
    assert job_events.handler(event, context()) == {"outcome": "rejected"}
    assert routed["tuning"] == [] and routed["training"] == []


def test_a_tuning_detail_under_the_training_detail_type_is_rejected(
        routed: dict[str, list[Any]]) -> None:
    event = load("sagemaker_hyperparameter_tuning_job_state_change")
    event["detail-type"] = "SageMaker Training Job State Change"
    assert job_events.handler(event, context()) == {"outcome": "rejected"}
    assert routed["tuning"] == [] and routed["training"] == []


def test_each_tuning_change_is_applied_once(routed: dict[str, list[Any]],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """With the idempotency table, a re-sent change (same id, or a new one) is answered from
    its record; another change of the same tuning job is applied. Tuning and training changes
    keep their own key paths."""
    from bot.adapters.dynamodb_schema import idempotency_table_definition
    from bot.aws import aws_client

    monkeypatch.setenv("TRAINBOT_IDEMPOTENCY_TABLE", "trainbot-test-idempotency")
    with mock_aws():
        aws_client("dynamodb").create_table(
            **idempotency_table_definition("trainbot-test-idempotency"))
        runtime.reset()
        event = load("sagemaker_hyperparameter_tuning_job_state_change_in_progress")
        first = job_events.handler(event, context())
        assert job_events.handler(event, context()) == first
        assert job_events.handler(dict(event, id=str(uuid.uuid4())), context()) == first
        assert len(routed["tuning"]) == 1
        later = json.loads(json.dumps(event))
        later["detail"]["TrainingJobStatusCounters"]["Completed"] = 1
        later["detail"]["TrainingJobStatusCounters"]["InProgress"] = 1
        assert job_events.handler(later, context())["revision"] == 2
        assert len(routed["tuning"]) == 2
        trial = load("sagemaker_training_job_state_change_tuning_trial")
        job_events.handler(trial, context())
        job_events.handler(trial, context())
        assert len(routed["training"]) == 1
        records = aws_client("dynamodb").scan(TableName="trainbot-test-idempotency")["Items"]
        assert len(records) == 3
