"""Registered models in the single table: numbered per group, decided once.

Items (see :mod:`bot.adapters.dynamodb_schema`): ``MODEL#<group>`` holds the group's
``V#<number>`` versions and its ``FROM#<job>#<version>`` items (which number a training version
was registered as); ``MODELS`` holds one item per group with its counter. A registration is
one transaction of all three, so numbers have no gaps and a training version is registered in
a group once however many times (and from however many processes) it is asked.
"""

from __future__ import annotations

from typing import Any, NoReturn

from botocore.exceptions import ClientError

from bot.adapters.dynamodb.items import model_from_item
from bot.adapters.dynamodb.keys import (
    MODEL_GROUPS,
    VERSION_PREFIX,
    model_group_key,
    model_partition,
    model_source_key,
    model_version_key,
    trained_partition,
)
from bot.adapters.dynamodb.reads import TableReads
from bot.adapters.dynamodb.transactions import (
    CHECK_FAILED,
    backoff,
    cancellation_codes,
    conditional_update,
    transact,
)
from bot.adapters.dynamodb.writes import model_registration, model_update
from bot.adapters.dynamodb_schema import MODELS_OF_INDEX
from bot.domain import Conflict, ModelStatus, ModelVersion, NotFound

__all__ = ["MAX_REGISTRATION_ATTEMPTS", "ModelVersions"]

# A registration retries when another one took the number first; each round one wins.
MAX_REGISTRATION_ATTEMPTS = 100

_COUNTER, _VERSION, _SOURCE = range(3)  # the registration transaction's items


def _reason_item(exc: ClientError, index: int) -> dict[str, Any] | None:
    """The item that failed the transaction's ``index``-th condition, when DynamoDB sent it."""
    reasons = exc.response.get("CancellationReasons", [])
    return reasons[index].get("Item") if len(reasons) > index else None


def _decided(stored: ModelVersion) -> str:
    """Why a save that expected another status was refused."""
    if stored.pending:
        return f"{stored.label} is still pending approval."
    by = f" by {stored.decided_by}" if stored.decided_by else ""
    return f"{stored.label} was already {stored.status.value.lower()}{by}."


class ModelVersions:
    """The model part of :class:`~bot.adapters.dynamodb.store.DynamoStore`."""

    def __init__(self, client: Any, reads: TableReads) -> None:
        self._client = client
        self._reads = reads
        self._table = reads.table_name

    def add(self, model: ModelVersion) -> tuple[ModelVersion, bool]:
        """See :meth:`bot.ports.JobStore.add_model_version`.

        One transaction moves the group's counter from n to n+1 (conditional on n), puts
        ``V#n+1`` and the ``FROM#`` item; losing the counter race means trying again with the
        counter's new value, losing the ``FROM#`` item means the version is registered already.
        """
        replayed = self._registered(model)
        if replayed is not None:
            return replayed, False
        latest = self._latest(model.group)
        for attempt in range(MAX_REGISTRATION_ATTEMPTS):
            if attempt:
                backoff(attempt)
            stored = model.model_copy(update={"number": latest + 1})
            try:
                transact(self._client, model_registration(self._table, stored))
            except ClientError as exc:
                codes = cancellation_codes(exc)
                if codes[_SOURCE] == CHECK_FAILED:
                    return self._replayed(model, exc), False
                if CHECK_FAILED not in (codes[_COUNTER], codes[_VERSION]):
                    raise
                old = _reason_item(exc, _COUNTER)
                latest = (int(old["latest_number"]["N"]) if old and "latest_number" in old
                          else self._latest(model.group))
                continue
            return stored, True
        raise Conflict(
            f"Too many versions of model `{model.group}` are being registered at once.",
            hint="Try again in a moment.",
        )

    def _latest(self, group: str) -> int:
        item = self._reads.get(model_group_key(group))
        return 0 if item is None else int(item["latest_number"]["N"])

    def _registered(self, model: ModelVersion) -> ModelVersion | None:
        """The version already registered from ``model``'s training version, if any."""
        source = self._reads.get(model_source_key(model.group, model.job, model.version))
        return None if source is None else self.get(model.group, int(source["number"]["N"]))

    def _replayed(self, model: ModelVersion, exc: ClientError) -> ModelVersion:
        source = _reason_item(exc, _SOURCE)
        if source is not None:
            return self.get(model.group, int(source["number"]["N"]))
        stored = self._registered(model)
        if stored is None:  # its condition failed, so it exists; these are never deleted
            raise Conflict(f"Model `{model.group}` is in an inconsistent state.") from exc
        return stored

    def get(self, group: str, number: int) -> ModelVersion:
        item = self._reads.get(model_version_key(group, number))
        if item is None:
            raise NotFound(f"There is no version {number} of model `{group}`.")
        return model_from_item(item)

    def groups(self) -> list[str]:
        """One Query of the groups' partition; sorted (the sort key's byte order)."""
        return [item["SK"]["S"] for item in self._reads.query_partition(MODEL_GROUPS)]

    def listed(self, group: str) -> list[ModelVersion]:
        """One Query of the group's ``V#`` items, oldest first; ``NotFound`` if none."""
        items = self._reads.query_partition(model_partition(group), prefix=VERSION_PREFIX)
        models = [model_from_item(item) for item in items]
        if not models:
            raise NotFound(f"There is no model `{group}`.")
        return models

    def of_training_version(self, job: str, version: int) -> list[ModelVersion]:
        """One Query of the models-of index (eventually consistent); by group."""
        items = self._reads.query_index(MODELS_OF_INDEX, trained_partition(job, version))
        return [model_from_item(item) for item in items]

    def save(self, model: ModelVersion, *, expect_status: ModelStatus | None) -> ModelVersion:
        """See :meth:`bot.ports.JobStore.save_model_version`: one conditional UpdateItem."""
        return model_from_item(conditional_update(
            self._client, model_update(self._table, model, expect_status=expect_status),
            lambda exc: self._raise_refused(model, exc)))

    def _raise_refused(self, model: ModelVersion, exc: ClientError) -> NoReturn:
        old = exc.response.get("Item") or self._reads.get(
            model_version_key(model.group, model.number))
        if old is None:
            raise NotFound(f"There is no version {model.number} of model `{model.group}`.") from exc
        raise Conflict(_decided(model_from_item(old))) from exc
