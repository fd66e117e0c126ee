"""Render ``infra/dynamodb.json`` from :mod:`bot.adapters.dynamodb_schema`, the one definition
of trainbot's tables (``CreateTable`` for ``trainbot admin init-store`` and moto, CloudFormation
here). The fragment is committed so the deployment can be read and reviewed; a test fails when
it drifts from the schema. Regenerate with::

    .venv/bin/python -m tests.deploy.infra_fragments
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bot.adapters.dynamodb_schema import (
    cloudformation_resource,
    idempotency_cloudformation_resource,
)

__all__ = ["DYNAMODB_FRAGMENT", "IDEMPOTENCY_TABLE_NAME", "TABLE_NAME", "render_dynamodb"]

DYNAMODB_FRAGMENT = Path(__file__).resolve().parents[2] / "infra" / "dynamodb.json"
# Serverless variables, resolved when the service is packaged (see serverless.yml's custom).
TABLE_NAME = "${self:custom.tableName}"
IDEMPOTENCY_TABLE_NAME = "${self:custom.idempotencyTableName}"


def render_dynamodb() -> dict[str, Any]:
    """The ``resources`` fragment: the main table (kept on stack deletion: it is the data)
    and the idempotency table (TTL'd records, safe to delete with the stack)."""
    return {
        "Resources": {
            "JobsTable": {
                "Type": "AWS::DynamoDB::Table",
                "DeletionPolicy": "Retain",
                "UpdateReplacePolicy": "Retain",
                "Properties": cloudformation_resource(TABLE_NAME),
            },
            "IdempotencyTable": {
                "Type": "AWS::DynamoDB::Table",
                "DeletionPolicy": "Delete",
                "UpdateReplacePolicy": "Delete",
                "Properties": idempotency_cloudformation_resource(IDEMPOTENCY_TABLE_NAME),
            },
        },
    }


def rendered_text() -> str:
    return json.dumps(render_dynamodb(), indent=2) + "\n"


if __name__ == "__main__":
    DYNAMODB_FRAGMENT.write_text(rendered_text())
    print(f"wrote {DYNAMODB_FRAGMENT}")
