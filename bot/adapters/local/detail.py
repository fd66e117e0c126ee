"""A local run's job detail, shaped like SageMaker's ``DescribeTrainingJob`` output, and the
"Training Job State Change" events made from it.

The detail is kept as the plain dict SageMaker would send (it is what ``state.json`` holds and
what :class:`~bot.domain.TrainingJobStateChange` parses), so the service handles local and
SageMaker events alike.
"""

from __future__ import annotations

import json
import signal
import time
import uuid
from datetime import UTC, datetime
from typing import Any, TypeGuard

from bot.adapters.local.runs import RunDir
from bot.domain import Algorithm, JobVersion, ResourcePool, TrainingJobStateChange

__all__ = [
    "ARN_PREFIX",
    "FAILURE_REASON_MAX",
    "RESTART_REASON",
    "TERMINAL",
    "advance",
    "failure_reason",
    "initial_detail",
    "is_state",
    "iso_now",
    "lost_detail",
    "now_ms",
    "state_change",
]

ARN_PREFIX = "arn:aws:sagemaker:local:000000000000:training-job/"
RESTART_REASON = "trainbot restarted while this version ran and the process is gone"
TERMINAL = frozenset({"Completed", "Failed", "Stopped"})
FAILURE_REASON_MAX = 1024  # SageMaker's FailureReason limit


def initial_detail(run: RunDir, version: JobVersion, algorithm: Algorithm,
                   pool: ResourcePool) -> dict[str, Any]:
    """The detail of a run about to start (``InProgress``/``Starting``)."""
    now = now_ms()
    return {
        "TrainingJobName": run.name,
        "TrainingJobArn": ARN_PREFIX + run.name.lower(),
        "TrainingJobStatus": "InProgress",
        "SecondaryStatus": "Starting",
        "SecondaryStatusTransitions": [
            {"Status": "Starting", "StartTime": now,
             "StatusMessage": "Preparing the local run folder and process"}],
        "HyperParameters": {k: json.dumps(v) for k, v in version.spec.hyperparameters.items()},
        "AlgorithmSpecification": {"TrainingImage": f"local/{algorithm.ref}",
                                   "TrainingInputMode": "File"},
        "ResourceConfig": {"InstanceType": pool.instance_type,
                           "InstanceCount": pool.instance_count,
                           "VolumeSizeInGB": pool.volume_size_gb},
        "StoppingCondition": {"MaxRuntimeInSeconds": version.spec.max_runtime_s},
        "OutputDataConfig": {"S3OutputPath": run.output_dir.as_uri()},
        "TensorBoardOutputConfig": {"S3OutputPath": run.tensorboard_dir.as_uri()},
        "CheckpointConfig": {"S3Uri": run.checkpoint_dir.as_uri()},
        "CreationTime": now,
        "LastModifiedTime": now,
        "FinalMetricDataList": [],
        "Tags": {"trainbot:job": version.job, "trainbot:version": str(version.number),
                 "trainbot:algorithm": algorithm.ref, "trainbot:pool": pool.id,
                 "trainbot:requested-by": version.requested_by},
    }


def lost_detail(name: str, reason: str) -> dict[str, Any]:
    """A Failed detail for a run whose state can't be read back."""
    now = now_ms()
    return {"TrainingJobName": name, "TrainingJobArn": ARN_PREFIX + name.lower(),
            "TrainingJobStatus": "Failed", "SecondaryStatus": "Failed", "FailureReason": reason,
            "SecondaryStatusTransitions": [{"Status": "Failed", "StartTime": now,
                                            "EndTime": now, "StatusMessage": reason}],
            "LastModifiedTime": now, "TrainingEndTime": now}


def is_state(state: Any) -> TypeGuard[dict[str, Any]]:
    """Whether ``state`` (a parsed ``state.json``) has a detail and a runner record."""
    return (isinstance(state, dict) and isinstance(state.get("detail"), dict)
            and isinstance(state.get("runner"), dict))


def advance(detail: dict[str, Any], status: str, secondary: str, message: str,
            **fields: Any) -> None:
    """Move ``detail`` (in place) to a new status and secondary status, closing the open
    transition and opening the next, as SageMaker records them."""
    now = now_ms()
    transitions = detail.setdefault("SecondaryStatusTransitions", [])
    if transitions and "EndTime" not in transitions[-1]:
        transitions[-1]["EndTime"] = now
    transitions.append({"Status": secondary, "StartTime": now, "StatusMessage": message})
    detail.update(fields, TrainingJobStatus=status, SecondaryStatus=secondary,
                  LastModifiedTime=now)
    if status in TERMINAL:
        transitions[-1]["EndTime"] = now


def state_change(detail: dict[str, Any]) -> TrainingJobStateChange:
    """The EventBridge event SageMaker would send for ``detail``."""
    return TrainingJobStateChange.model_validate({
        "id": str(uuid.uuid4()), "time": iso_now(),
        "resources": [detail.get("TrainingJobArn") or ""],
        "detail": json.loads(json.dumps(detail)),  # a snapshot the monitor won't mutate
    })


def failure_reason(code: int, error_line: str | None, last_line: str | None,
                   run: RunDir) -> str:
    """The script's own words if it left any (``ERROR:`` line, SageMaker's failure file),
    else the exit status with the last log line as a hint."""
    if error_line:
        return error_line
    try:
        written = run.failure_file.read_text(encoding="utf-8").strip()
    except OSError:
        written = ""
    if written:
        return f"AlgorithmError: {written}"
    sig = -code if code < 0 else code - 128 if code > 128 else 0
    if sig:
        try:
            what = f"killed by {signal.Signals(sig).name}"
        except ValueError:
            what = f"killed by signal {sig}"
        if sig == signal.SIGKILL:
            what += " (out of memory?)"
    else:
        what = f"exit code {code}"
    hint = f"; last line: {last_line}" if last_line else "; the log is empty"
    return f"AlgorithmError: {what}{hint}"


def now_ms() -> int:
    return int(time.time() * 1000)


def iso_now() -> str:
    return datetime.now(UTC).isoformat()
