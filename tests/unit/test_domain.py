from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.domain import InvalidInput, JobSpec, JobVersion, Status
from bot.domain.naming import TRAINING_JOB_NAME, backend_job_name
from bot.domain.status import can_transition
from tests.unit.conftest import ALGO

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_hyperparameters_coerced_from_strings() -> None:
    out = ALGO.validate_hyperparameters({"epochs": "5", "lr": "0.01", "amp": "no"})
    assert out == {"epochs": 5, "lr": 0.01, "amp": False, "optimizer": "adam"}


@pytest.mark.parametrize(("key", "value", "needle"), [
    ("epochs", "0", "[1, 100]"), ("epochs", "2.5", "integer"), ("lr", "nan", "number"),
    ("amp", "maybe", "true or false"), ("optimizer", "rmsprop", "adam, sgd"),
])
def test_bad_hyperparameter_names_the_range(key: str, value: str, needle: str) -> None:
    with pytest.raises(InvalidInput) as err:
        ALGO.validate_hyperparameters({key: value})
    assert key in err.value.message and needle in err.value.message


def test_unknown_hyperparameter_lists_the_known_ones() -> None:
    with pytest.raises(InvalidInput) as err:
        ALGO.validate_hyperparameters({"epoch": "3"})
    assert "epochs" in err.value.user_text()


def test_state_machine_never_moves_backwards() -> None:
    assert can_transition(Status.QUEUED, Status.TRAINING)
    assert not can_transition(Status.COMPLETED, Status.TRAINING)
    assert not can_transition(Status.TRAINING, Status.STARTING)
    assert not can_transition(Status.AWAITING_APPROVAL, Status.TRAINING)
    assert not can_transition(Status.TRAINING, Status.REJECTED)


def test_transition_records_history_and_times() -> None:
    v = JobVersion(job="j", number=1, spec=JobSpec(algorithm="toy", algorithm_version="1.0.0",
                   pool="local-cpu"), requested_by="U1", status=Status.QUEUED,
                   created_at=T0, updated_at=T0)
    v2 = v.transition(Status.TRAINING, at=T0).transition(Status.COMPLETED, at=T0)
    assert [h.status for h in v2.history] == [Status.TRAINING, Status.COMPLETED]
    assert v2.started_at == T0 and v2.ended_at == T0
    assert v2.transition(Status.TRAINING, at=T0) is v2


def test_backend_names_are_valid_sagemaker_names() -> None:
    name = backend_job_name("trainbot", "a" * 40, 999999, "abcd")
    assert len(name) <= 63 and TRAINING_JOB_NAME.match(name)


def test_spec_rejects_bad_data_uri() -> None:
    with pytest.raises(ValueError, match="s3://"):
        JobSpec(algorithm="toy", algorithm_version="1.0.0", pool="p", data={"train": "http://x"})


def test_every_public_domain_name_resolves_lazily() -> None:
    import bot.domain as domain

    for name in domain.__all__:
        assert getattr(domain, name).__name__ == name
    assert set(domain.__all__) <= set(dir(domain))
    with pytest.raises(AttributeError):
        domain.NoSuchThing  # noqa: B018
