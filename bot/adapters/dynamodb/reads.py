"""Reads of the one table: consistent GetItem, and Query that follows its pages.

Shared by the store and the parts it delegates to, so every read of the table is one of these
(a key or a partition: nothing here scans).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from bot.adapters.dynamodb.keys import Item, text

__all__ = ["TableReads"]


class TableReads:
    """Reads of ``table_name`` through ``client`` (a low-level boto3 DynamoDB client)."""

    def __init__(self, client: Any, table_name: str) -> None:
        self._client = client
        self.table_name = table_name

    def get(self, key: Item) -> Item | None:
        """The item at ``key``, strongly consistent."""
        response = self._client.get_item(TableName=self.table_name, Key=key, ConsistentRead=True)
        return response.get("Item")

    def query(self, **kwargs: Any) -> Iterator[Item]:
        """Every item a Query matches, following pagination."""
        kwargs["TableName"] = self.table_name
        while True:
            page = self._client.query(**kwargs)
            yield from page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def query_index(self, index: str, partition: str, **kwargs: Any) -> Iterator[Item]:
        """Every item of one partition of ``index`` (eventually consistent, as indexes are)."""
        return self.query(
            IndexName=index,
            KeyConditionExpression="#pk = :pk",
            ExpressionAttributeNames={"#pk": f"{index}PK"},
            ExpressionAttributeValues={":pk": text(partition)},
            **kwargs,
        )

    def query_partition(self, partition: str, *, prefix: str | None = None) -> Iterator[Item]:
        """Every item of one table partition (whose sort key starts with ``prefix``, when
        given), consistently read."""
        condition, values = "PK = :pk", {":pk": text(partition)}
        if prefix is not None:
            condition += " AND begins_with(SK, :prefix)"
            values[":prefix"] = text(prefix)
        return self.query(
            KeyConditionExpression=condition,
            ExpressionAttributeValues=values,
            ConsistentRead=True,
        )
