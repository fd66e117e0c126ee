"""What a failed write means, and the retry loop for transactions.

A cancelled ``TransactWriteItems`` says, per item, why: a false condition
(``ConditionalCheckFailed``: the caller's answer, never retried) or "try again" (a conflict
with another transaction on the same items, throttling), retried here with backoff.
https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_TransactWriteItems.html
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any, NoReturn

from botocore.exceptions import ClientError

__all__ = [
    "CHECK_FAILED",
    "MAX_TRANSACT_ATTEMPTS",
    "RETRYABLE",
    "backoff",
    "cancellation_codes",
    "check_failed",
    "conditional_update",
    "retryable",
    "transact",
]

# Other transactions retry only while DynamoDB says "try again" (a conflict with another
# transaction on the same items, throttling), never on a condition that is false.
MAX_TRANSACT_ATTEMPTS = 10
_BACKOFF_BASE_S = 0.005
_BACKOFF_CAP_S = 0.2
# Cancellation reasons that say "try again", not "your condition is false".
RETRYABLE = frozenset({"TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded"})
CHECK_FAILED = "ConditionalCheckFailed"


def _code(exc: ClientError) -> str:
    return exc.response.get("Error", {}).get("Code", "")


def check_failed(exc: ClientError) -> bool:
    """A single-item write whose condition was false."""
    return _code(exc) == "ConditionalCheckFailedException"


def conditional_update(client: Any, request: dict[str, Any],
                       refused: Callable[[ClientError], NoReturn]) -> dict[str, Any]:
    """One UpdateItem whose condition may be false: the item as written, or ``refused``
    (which finds the item as it was in ``exc.response["Item"]``) raises."""
    try:
        response = client.update_item(**request, ReturnValues="ALL_NEW",
                                      ReturnValuesOnConditionCheckFailure="ALL_OLD")
    except ClientError as exc:
        if not check_failed(exc):
            raise
        refused(exc)
    return dict(response["Attributes"])


def cancellation_codes(exc: ClientError) -> list[str]:
    """Per-item outcome of a cancelled transaction (``"None"`` for items that were fine).

    Re-raises ``exc`` when it is not a cancellation: that is not ours to interpret.
    """
    if _code(exc) != "TransactionCanceledException":
        raise exc
    return [r.get("Code") or "None" for r in exc.response.get("CancellationReasons", [])]


def retryable(codes: list[str]) -> bool:
    """Every item either was fine or may succeed when tried again."""
    return set(codes) <= RETRYABLE | {"None"}


def backoff(attempt: int) -> None:
    # "Full jitter": concurrent losers spread out instead of colliding again in lockstep.
    time.sleep(random.uniform(0, min(_BACKOFF_CAP_S, _BACKOFF_BASE_S * 2**attempt)))


def transact(client: Any, items: list[dict]) -> None:
    """One transaction, retried while DynamoDB says "try again". A false condition
    raises the ``ClientError`` (read it with :func:`cancellation_codes`)."""
    for attempt in range(MAX_TRANSACT_ATTEMPTS):
        if attempt:
            backoff(attempt)
        try:
            client.transact_write_items(TransactItems=items)
        except ClientError as exc:
            codes = cancellation_codes(exc)
            if attempt + 1 == MAX_TRANSACT_ATTEMPTS or not retryable(codes):
                raise
            continue
        return
