"""boto3 clients for every adapter: region, endpoint override, retries — and made on first use.

Light at import (boto3 is imported when a client is made): the Lambda ack path uses it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["LazyClient", "aws_client", "aws_region"]


class LazyClient:
    """A boto3 client created on first use.

    Building the bot creates clients for the store and the backend; the Slack ack path uses
    none of them, and each costs ~40 ms (boto3's import more) on a Lambda cold start.
    """

    def __init__(self, service: str, factory: Callable[[str], Any] | None = None) -> None:
        self._service = service
        self._factory = factory or aws_client
        self._client: Any = None
        self._lock = threading.Lock()

    def _real(self) -> Any:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = self._factory(self._service)
        return self._client

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real(), name)


def aws_region() -> str:
    from bot.domain import ConfigError

    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if not region:
        raise ConfigError("AWS_REGION is not set (the region of your table, bucket and jobs).")
    return region


def aws_client(service: str) -> Any:
    """A boto3 client honouring ``AWS_ENDPOINT_URL`` (moto server, LocalStack) and retries."""
    import boto3
    from botocore.config import Config

    region = aws_region()
    config = Config(retries={"mode": "adaptive", "max_attempts": 8},
                    connect_timeout=5, read_timeout=30)
    return boto3.client(service, region_name=region, config=config,
                        endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None)
