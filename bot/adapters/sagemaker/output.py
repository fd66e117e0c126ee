"""A training job's S3 output: ``evaluation.json`` from SageMaker's ``output.tar.gz``.

The tarball holds what the script wrote to ``SM_OUTPUT_DATA_DIR``; it is read whole into
memory, so anything over :data:`MAX_OUTPUT_BYTES` is skipped rather than read.
https://docs.aws.amazon.com/sagemaker/latest/dg/model-train-storage.html
"""

from __future__ import annotations

import io
import json
import logging
import tarfile
from pathlib import PurePosixPath
from typing import Any

__all__ = ["MAX_EVALUATION_BYTES", "MAX_OUTPUT_BYTES", "evaluation_from_object",
           "evaluation_from_tarball"]

log = logging.getLogger("trainbot.compute.sagemaker")

MAX_OUTPUT_BYTES = 20 * 1024 * 1024  # output.tar.gz read for evaluation.json
MAX_EVALUATION_BYTES = 5 * 1024 * 1024


def evaluation_from_object(found: dict[str, Any], *, label: str) -> dict | None:
    """``evaluation.json`` from a GetObject response for ``output.tar.gz`` (the object of
    version ``label``); None, with a warning, when the object is too large to read."""
    if int(found.get("ContentLength") or 0) > MAX_OUTPUT_BYTES:
        log.warning("%s: output.tar.gz is over %d bytes; evaluation skipped",
                    label, MAX_OUTPUT_BYTES)
        found["Body"].close()
        return None
    return evaluation_from_tarball(found["Body"].read(MAX_OUTPUT_BYTES + 1))


def evaluation_from_tarball(data: bytes) -> dict | None:
    """``evaluation.json`` (the shallowest one) from SageMaker's ``output.tar.gz``, which
    holds what the script wrote to ``SM_OUTPUT_DATA_DIR``. None when absent or unreadable."""
    if len(data) > MAX_OUTPUT_BYTES:
        return None
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
            members = [m for m in tar.getmembers()
                       if m.isfile() and PurePosixPath(m.name).name == "evaluation.json"
                       and m.size <= MAX_EVALUATION_BYTES]
            if not members:
                return None
            member = min(members, key=lambda m: len(PurePosixPath(m.name).parts))
            handle = tar.extractfile(member)
            parsed = json.loads(handle.read()) if handle else None
    except (tarfile.TarError, OSError, ValueError, EOFError) as exc:
        log.warning("unreadable output.tar.gz: %s", exc)
        return None
    return parsed if isinstance(parsed, dict) else None
