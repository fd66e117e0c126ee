"""The DynamoDB tables trainbot uses, defined once as data.

``table_definition`` is what ``CreateTable`` takes, ``cloudformation_resource`` is the same
table as ``AWS::DynamoDB::Table`` properties (``serverless.yml`` renders it), and
``ensure_tables`` creates what is missing (``trainbot admin init-store``).

Single-table layout (keys are strings)::

    item       PK                 SK            index attributes
    job        JOB#<job>          META          GSI3 (channel, time), GSI5 (all jobs, time)
    version    JOB#<job>          V#<000001>    GSI1 (active, sparse), GSI2 (backend name),
                                                GSI4 (ended, by day)
    preset     PRESET#<scope>     <name>
    approval   APPROVAL#<id>      META
    guard      REQ#<request key>  META          points at the version stored under that key
    backend    BACKEND#<name>     META          points at the version that claimed that backend
                                                job name (written in the claim's transaction)
    pool       POOL#<pool>        META          ``active``: places of the pool held by versions
    algorithm  ALGO#<scope>#<id>  V#<digest>    one registered version (immutable, put once)
    algo id    ALGOS#<scope>      <id>          the id's current digest, hidden flag and that
                                                version's body: listing a scope is one Query
    model      MODEL#<group>      V#<000001>    one registered model version; GSI1 (models of
                                                a training version: TRAINED#<job>#<000001>)
    model src  MODEL#<group>      FROM#<job>#<000001>  the number registered from that training
                                                version: registering it again finds it
    group      MODELS             <group>       the group's version counter; listing groups is
                                                one Query
    cap        CAP#<cap>          META          ``active``: places of a cap (``user:U1``,
                                                ``pool-channel:gpu-1:C1``…) held by versions
    ledger     LEDGER#<period>    <key>         spend of one key (``total``, ``user:U1``…) in
                                                one period (``2026-11``, ``2026-W48``):
                                                committed, spent, spot saving, versions
    budget     BUDGETS            <scope>#<subject>  a budget; listing them is one Query
    notice     NOTICE#<key>       META          ``told``, or ``lease_until`` of a live claim

A version item also carries ``slot``, ``caps`` and ``charge`` while it holds a pool place,
caps' places or a charge: the writes that take and give them back are conditional on them.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ACTIVE_INDEX",
    "ACTIVE_SHARDS",
    "ALL_JOBS_INDEX",
    "BACKEND_INDEX",
    "CHANNEL_INDEX",
    "ENDED_INDEX",
    "IDEMPOTENCY_KEY",
    "IDEMPOTENCY_TTL_ATTRIBUTE",
    "MODELS_OF_INDEX",
    "cloudformation_resource",
    "ensure_tables",
    "idempotency_cloudformation_resource",
    "idempotency_table_definition",
    "table_definition",
]

ACTIVE_INDEX = "GSI1"  # GSI1PK=ACTIVE#<shard>, GSI1SK=<created_at>#<job>#<number>; sparse
BACKEND_INDEX = "GSI2"  # GSI2PK=BACKEND#<backend job name>
CHANNEL_INDEX = "GSI3"  # GSI3PK=CHANNEL#<channel>, GSI3SK=<created_at>#<job>
ENDED_INDEX = "GSI4"  # GSI4PK=ENDED#<YYYY-MM-DD>, GSI4SK=<ended_at>#<job>#<number>
ALL_JOBS_INDEX = "GSI5"  # GSI5PK=JOBS, GSI5SK=<created_at>#<job>
# Model versions share GSI1 (an overloaded index: its partitions are told apart by prefix).
MODELS_OF_INDEX = ACTIVE_INDEX  # GSI1PK=TRAINED#<job>#<000001>, GSI1SK=<group>

# Active versions are spread over a few partitions so a burst of launches doesn't make one
# index partition hot; list_active queries every shard.
ACTIVE_SHARDS = 4

# The layout of Powertools' DynamoDBPersistenceLayer (its defaults: key_attr="id",
# expiry_attr="expiration").
IDEMPOTENCY_KEY = "id"
IDEMPOTENCY_TTL_ATTRIBUTE = "expiration"

_PAY_PER_REQUEST = "PAY_PER_REQUEST"
# New tables turn active in seconds; botocore's default 20 s poll would make init-store slow.
_WAIT = {"Delay": 2, "MaxAttempts": 90}


def _key(hash_attr: str, range_attr: str | None = None) -> list[dict[str, str]]:
    schema = [{"AttributeName": hash_attr, "KeyType": "HASH"}]
    if range_attr:
        schema.append({"AttributeName": range_attr, "KeyType": "RANGE"})
    return schema


def _gsi(name: str, *, ranged: bool = True, projection: str = "ALL") -> dict[str, Any]:
    return {
        "IndexName": name,
        "KeySchema": _key(f"{name}PK", f"{name}SK" if ranged else None),
        "Projection": {"ProjectionType": projection},
    }


def _attributes(*names: str) -> list[dict[str, str]]:
    return [{"AttributeName": n, "AttributeType": "S"} for n in names]


def table_definition(table_name: str) -> dict[str, Any]:
    """``CreateTable`` keyword arguments for the main table."""
    indexes = [
        _gsi(ACTIVE_INDEX),
        # Keys only: the store reads the version itself with a consistent GetItem, so the
        # revision it hands out for compare-and-set is current.
        _gsi(BACKEND_INDEX, ranged=False, projection="KEYS_ONLY"),
        _gsi(CHANNEL_INDEX),
        _gsi(ENDED_INDEX),
        _gsi(ALL_JOBS_INDEX),
    ]
    key_names = ["PK", "SK"]
    for index in indexes:
        key_names += [k["AttributeName"] for k in index["KeySchema"]]
    return {
        "TableName": table_name,
        "BillingMode": _PAY_PER_REQUEST,
        "KeySchema": _key("PK", "SK"),
        "AttributeDefinitions": _attributes(*key_names),
        "GlobalSecondaryIndexes": indexes,
        "SSESpecification": {"Enabled": True},
    }


def idempotency_table_definition(table_name: str) -> dict[str, Any]:
    """``CreateTable`` keyword arguments for the Powertools idempotency table.

    Its TTL (``IDEMPOTENCY_TTL_ATTRIBUTE``) is not part of CreateTable; ``ensure_tables``
    turns it on with ``UpdateTimeToLive``.
    """
    return {
        "TableName": table_name,
        "BillingMode": _PAY_PER_REQUEST,
        "KeySchema": _key(IDEMPOTENCY_KEY),
        "AttributeDefinitions": _attributes(IDEMPOTENCY_KEY),
        "SSESpecification": {"Enabled": True},
    }


def _cfn_properties(definition: dict[str, Any], table_name_ref: Any) -> dict[str, Any]:
    # CloudFormation spells the encryption flag differently from the API.
    props = {k: v for k, v in definition.items() if k != "SSESpecification"}
    props["TableName"] = table_name_ref
    props["SSESpecification"] = {"SSEEnabled": True}
    return props


def cloudformation_resource(table_name_ref: Any) -> dict[str, Any]:
    """The main table as ``AWS::DynamoDB::Table`` Properties.

    ``table_name_ref`` goes in as-is: a name, ``{"Ref": ...}`` or a ``${...}`` variable.
    """
    props = _cfn_properties(table_definition("placeholder"), table_name_ref)
    props["PointInTimeRecoverySpecification"] = {"PointInTimeRecoveryEnabled": True}
    return props


def idempotency_cloudformation_resource(table_name_ref: Any) -> dict[str, Any]:
    """The idempotency table as ``AWS::DynamoDB::Table`` Properties, TTL included."""
    props = _cfn_properties(idempotency_table_definition("placeholder"), table_name_ref)
    props["TimeToLiveSpecification"] = {
        "AttributeName": IDEMPOTENCY_TTL_ATTRIBUTE,
        "Enabled": True,
    }
    return props


def _exists(client: Any, table_name: str) -> bool:
    try:
        client.describe_table(TableName=table_name)
    except client.exceptions.ResourceNotFoundException:
        return False
    return True


def ensure_tables(client: Any, table: str, idempotency_table: str | None = None) -> list[str]:
    """Create the main table (and the idempotency table) if missing; wait until active.

    Returns the names of the tables it created. Existing tables are left as they are.
    """
    created: list[str] = []
    if not _exists(client, table):
        client.create_table(**table_definition(table))
        client.get_waiter("table_exists").wait(TableName=table, WaiterConfig=_WAIT)
        client.update_continuous_backups(
            TableName=table,
            PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True},
        )
        created.append(table)
    if idempotency_table and not _exists(client, idempotency_table):
        client.create_table(**idempotency_table_definition(idempotency_table))
        client.get_waiter("table_exists").wait(TableName=idempotency_table, WaiterConfig=_WAIT)
        client.update_time_to_live(
            TableName=idempotency_table,
            TimeToLiveSpecification={
                "AttributeName": IDEMPOTENCY_TTL_ATTRIBUTE,
                "Enabled": True,
            },
        )
        created.append(idempotency_table)
    return created
