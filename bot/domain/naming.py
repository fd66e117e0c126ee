"""Backend job names: valid SageMaker TrainingJobNames that map back to a version."""

from __future__ import annotations

import re

__all__ = ["TRAINING_JOB_NAME", "TUNING_JOB_NAME", "backend_job_name", "tuning_job_name"]

# \Z, not $: "$" also matches before a trailing newline ("name\n" must not pass).
TRAINING_JOB_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}\Z")
_MAX = 63
# A tuning job's name is shorter: SageMaker names its trials `<name>-NNN-xxxxxxxx` (≤ 63).
TUNING_JOB_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,31}\Z")
_MAX_TUNING = 32


def backend_job_name(prefix: str, job: str, number: int, suffix: str) -> str:
    """``<prefix>-<job>-v<number>-<suffix>``, shortened (job part) to SageMaker's 63 chars.

    The suffix keeps names unique when a job name is reused (SageMaker never frees a name).
    """
    tail = f"-v{number}-{suffix}"
    room = _MAX - len(prefix) - 1 - len(tail)
    stem = job[: max(room, 1)].rstrip("-")
    name = f"{prefix}-{stem}{tail}"
    if not TRAINING_JOB_NAME.match(name):
        raise ValueError(f"cannot derive a valid training job name from {job!r}")
    return name


def tuning_job_name(prefix: str, sweep: str, suffix: str) -> str:
    """``<prefix>-<sweep>-<suffix>`` in SageMaker's 32 characters (sweep part shortened):
    the prefix keeps it (and its trials' training jobs, ``<name>-NNN-xxxxxxxx``) inside
    trainbot's EventBridge rules and IAM resources; the suffix (letters and digits only)
    keeps a reused sweep name unique, since SageMaker never frees a name. ``ValueError`` if
    no valid name can be made (a suffix without letters or digits, a prefix leaving no
    room)."""
    # Lower case: SageMaker writes tuning-job ARNs in lower case in places, and IAM resource
    # patterns match case-sensitively.
    clean = re.sub(r"[^a-z0-9]", "", suffix.lower())
    if not clean:
        raise ValueError(f"tuning job name suffix {suffix!r} has no letters or digits")
    room = _MAX_TUNING - len(prefix) - 2 - len(clean)
    stem = sweep.lower()[: max(room, 1)].rstrip("-")
    name = f"{prefix}-{stem}-{clean}"
    if not TUNING_JOB_NAME.match(name):
        raise ValueError(f"cannot derive a valid tuning job name from {sweep!r}")
    return name
