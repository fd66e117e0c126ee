"""The DynamoDB table definitions: one source for CreateTable, CloudFormation and init-store."""

from __future__ import annotations

import boto3
from moto import mock_aws

from bot.adapters.dynamodb_schema import (
    IDEMPOTENCY_KEY,
    IDEMPOTENCY_TTL_ATTRIBUTE,
    cloudformation_resource,
    ensure_tables,
    idempotency_cloudformation_resource,
    idempotency_table_definition,
    table_definition,
)


def _key_attributes(definition: dict) -> set[str]:
    names = {k["AttributeName"] for k in definition["KeySchema"]}
    for index in definition.get("GlobalSecondaryIndexes", []):
        names |= {k["AttributeName"] for k in index["KeySchema"]}
    return names


def test_every_key_attribute_is_defined_and_nothing_else() -> None:
    # CreateTable rejects attribute definitions that no key or index uses.
    definition = table_definition("t")

    defined = {a["AttributeName"] for a in definition["AttributeDefinitions"]}

    assert defined == _key_attributes(definition)
    assert {a["AttributeType"] for a in definition["AttributeDefinitions"]} == {"S"}


def test_the_main_table_has_the_documented_keys_and_indexes() -> None:
    definition = table_definition("trainbot")

    assert definition["TableName"] == "trainbot"
    assert definition["BillingMode"] == "PAY_PER_REQUEST"
    assert [k["AttributeName"] for k in definition["KeySchema"]] == ["PK", "SK"]
    indexes = {i["IndexName"]: i for i in definition["GlobalSecondaryIndexes"]}
    assert set(indexes) == {"GSI1", "GSI2", "GSI3", "GSI4", "GSI5"}
    assert indexes["GSI2"]["Projection"] == {"ProjectionType": "KEYS_ONLY"}
    assert [k["KeyType"] for k in indexes["GSI2"]["KeySchema"]] == ["HASH"]


def test_cloudformation_properties_match_the_api_definition() -> None:
    api = table_definition("ignored")

    props = cloudformation_resource({"Ref": "TableName"})

    assert props["TableName"] == {"Ref": "TableName"}
    for key in ("BillingMode", "KeySchema", "AttributeDefinitions", "GlobalSecondaryIndexes"):
        assert props[key] == api[key]
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert props["SSESpecification"] == {"SSEEnabled": True}


def test_the_idempotency_table_has_the_powertools_layout() -> None:
    definition = idempotency_table_definition("trainbot-idempotency")
    props = idempotency_cloudformation_resource("trainbot-idempotency")

    assert definition["KeySchema"] == [{"AttributeName": IDEMPOTENCY_KEY, "KeyType": "HASH"}]
    assert (IDEMPOTENCY_KEY, IDEMPOTENCY_TTL_ATTRIBUTE) == ("id", "expiration")
    assert props["TimeToLiveSpecification"] == {"AttributeName": "expiration", "Enabled": True}
    assert props["KeySchema"] == definition["KeySchema"]


def test_ensure_tables_creates_missing_tables_once() -> None:
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")

        created = ensure_tables(client, "trainbot", idempotency_table="trainbot-idem")
        again = ensure_tables(client, "trainbot", idempotency_table="trainbot-idem")

        assert created == ["trainbot", "trainbot-idem"]
        assert again == []
        table = client.describe_table(TableName="trainbot")["Table"]
        assert {i["IndexName"] for i in table["GlobalSecondaryIndexes"]} == {
            "GSI1",
            "GSI2",
            "GSI3",
            "GSI4",
            "GSI5",
        }
        ttl = client.describe_time_to_live(TableName="trainbot-idem")["TimeToLiveDescription"]
        assert ttl["AttributeName"] == "expiration"
        assert ttl["TimeToLiveStatus"] == "ENABLED"
        backups = client.describe_continuous_backups(TableName="trainbot")
        pitr = backups["ContinuousBackupsDescription"]["PointInTimeRecoveryDescription"]
        assert pitr["PointInTimeRecoveryStatus"] == "ENABLED"


def test_ensure_tables_without_an_idempotency_table_creates_only_the_main_one() -> None:
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")

        assert ensure_tables(client, "trainbot") == ["trainbot"]
        assert client.list_tables()["TableNames"] == ["trainbot"]
