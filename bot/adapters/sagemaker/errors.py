"""botocore failures → trainbot's :class:`BackendError` family, with short user-facing text.

Messages never carry credentials or request ids; AWS messages are trimmed. Throttling and
5xx are retried by the client's adaptive retry mode (see :func:`bot.aws.aws_client`,
https://boto3.amazonaws.com/v1/documentation/api/latest/guide/retries.html); what still
fails reaches :func:`translate` and becomes a "try again" message.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
)

from bot.domain import BackendError, BackendRejected, QuotaExceeded

log = logging.getLogger("trainbot")

__all__ = [
    "THROTTLING_CODES",
    "error_code",
    "error_message",
    "is_not_found",
    "stop_quietly",
    "translate",
]

THROTTLING_CODES = frozenset({
    "ThrottlingException", "Throttling", "ThrottledException", "TooManyRequestsException",
    "RequestLimitExceeded", "SlowDown", "ProvisionedThroughputExceededException",
})
_UNAVAILABLE_CODES = frozenset({
    "InternalFailure", "InternalServerError", "InternalError", "ServiceUnavailable",
    "ServiceUnavailableException", "InternalServerException",
})
_ACCESS_CODES = frozenset({"AccessDeniedException", "AccessDenied", "UnauthorizedOperation"})
_NOT_FOUND_CODES = frozenset({
    "ResourceNotFound", "ResourceNotFoundException", "NoSuchKey", "NoSuchBucket", "404",
    "NotFound",
})
_QUOTA_NAME = re.compile(r"'(ml\.[^']+ usage)'")
_ACTION = re.compile(r"perform: ([a-zA-Z0-9-]+:[a-zA-Z0-9*]+)")
_MAX_MESSAGE = 300
BUSY = "SageMaker is throttling/unavailable right now; try again in a minute."
SETUP_HINT = (
    "Check the bot's AWS setup: credentials (the Lambda role, or AWS_PROFILE locally), "
    "AWS_REGION, and AWS_ENDPOINT_URL if you point at a stand-in."
)


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def error_message(exc: ClientError) -> str:
    text = " ".join(str(exc.response.get("Error", {}).get("Message", "")).split())
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 1] + "…"


def is_not_found(exc: ClientError) -> bool:
    """A missing resource. SageMaker says so with a ValidationException whose message is
    "Requested resource not found" (moto: "Could not find training job ...")."""
    code = error_code(exc)
    if code in _NOT_FOUND_CODES:
        return True
    if code == "ValidationException":
        message = error_message(exc).lower()
        return "not found" in message or "could not find" in message
    return False


def stop_quietly(stop: Callable[[], object], name: str) -> None:
    """Call a SageMaker ``Stop…`` request; a job that already ended (SageMaker answers a
    ValidationException) or that it doesn't know is stopped enough. ``BackendError`` (its
    subclasses) otherwise."""
    try:
        stop()
    except ClientError as exc:
        if error_code(exc) == "ValidationException" or is_not_found(exc):
            log.info("nothing to stop for %s: %s", name, exc)
            return
        raise translate(exc) from exc
    except BotoCoreError as exc:
        raise translate(exc) from exc


def translate(
    exc: Exception, *, instance_type: str | None = None, spot: bool = False
) -> BackendError:
    """The :class:`BackendError` to raise (``from exc``) for a botocore failure."""
    if isinstance(exc, ClientError):
        return _client_error(exc, instance_type=instance_type, spot=spot)
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return BackendError("trainbot has no AWS credentials.", hint=SETUP_HINT)
    if isinstance(exc, NoRegionError):
        return BackendError("trainbot has no AWS region configured.", hint=SETUP_HINT)
    if isinstance(exc, EndpointConnectionError):
        return BackendError("trainbot can't reach the AWS endpoint.", hint=SETUP_HINT)
    if isinstance(exc, BotoCoreError):
        return BackendError(BUSY)  # connection resets and timeouts that survived retries
    return BackendError("Unexpected failure talking to AWS.")


def _client_error(exc: ClientError, *, instance_type: str | None, spot: bool) -> BackendError:
    code, message = error_code(exc), error_message(exc)
    if code == "ResourceLimitExceeded":
        what = instance_type or "these"
        match = _QUOTA_NAME.search(message)
        quota = match.group(1) if match else (
            f"{instance_type or 'ml.<type>'} for {'spot ' if spot else ''}training job usage")
        return QuotaExceeded(
            f"Your account's quota for {what} training instances is exhausted.",
            hint=f"Ask AWS to raise '{quota}' in Service Quotas (console → Service Quotas → "
                 "Amazon SageMaker), or use a smaller pool / wait for running jobs.",
        )
    if code == "ResourceInUse":
        return BackendRejected(f"SageMaker rejected the job: {message or 'the name is in use'}")
    if code == "ValidationException":
        return BackendRejected(f"SageMaker rejected the job: {message}")
    if code in THROTTLING_CODES or code in _UNAVAILABLE_CODES or _status(exc) >= 500:
        return BackendError(BUSY)
    if code in _ACCESS_CODES:
        match = _ACTION.search(message)
        action = match.group(1) if match else "the AWS action it needs"
        return BackendError(
            f"trainbot's AWS role may not call {action}.",
            hint="Grant it in the bot's IAM policy (see the README's AWS setup).",
        )
    if code in ("ExpiredTokenException", "ExpiredToken", "UnrecognizedClientException",
                "InvalidClientTokenId"):
        return BackendError("trainbot's AWS credentials are invalid or expired.", hint=SETUP_HINT)
    return BackendError(f"AWS error {code or 'unknown'}: {message}".rstrip(": "))


def _status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
