"""The published algorithm catalog: what ``trainbot algorithms publish`` put in S3.

For every preset algorithm it records the source tarball (S3 URI + content digest), the
entry point and the training images (CPU and GPU) resolved for one region. The SageMaker
backend reads it to fill ``TrainingImage`` and ``sagemaker_submit_directory``; lineage shows
the digest and the image. Written by :mod:`bot.publish`, read here; no SDK needed.

    {"region": "us-east-1", "bucket": "b",
     "algorithms": {"<id>": {
         "version": "1.0.0", "digest": "<sha256>", "entry_point": "train.py",
         "source_uri": "s3://b/trainbot/algorithms/<id>/1.0.0/<digest[:16]>/sourcedir.tar.gz",
         "images": {"cpu": "<ecr uri>", "gpu": "<ecr uri>"}}}}
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from bot.domain import BackendRejected

__all__ = [
    "CATALOG_KEY",
    "PublishedAlgorithm",
    "PublishedCatalog",
    "PublishedImages",
    "catalog_uri",
    "split_s3_uri",
]

CATALOG_KEY = "trainbot/catalog.json"
_PUBLISH_HINT = "Run `trainbot algorithms publish` (see the README's AWS setup)."


def catalog_uri(bucket: str) -> str:
    return f"s3://{bucket}/{CATALOG_KEY}"


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` → ``(bucket, key)``; ``ValueError`` for anything else."""
    if not uri.startswith("s3://"):
        raise ValueError(f"not an s3:// URI: {uri!r}")
    bucket, _, key = uri[len("s3://"):].partition("/")
    if not bucket:
        raise ValueError(f"no bucket in {uri!r}")
    return bucket, key


class PublishedImages(BaseModel):
    """Training image URIs; either may be missing (a CPU-only framework has no GPU image)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    cpu: str | None = None
    gpu: str | None = None

    @model_validator(mode="after")
    def _one_at_least(self) -> PublishedImages:
        if not (self.cpu or self.gpu):
            raise ValueError("an algorithm needs a CPU or a GPU image")
        return self


class PublishedAlgorithm(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    version: str
    digest: str = Field(pattern=r"^[0-9a-f]{64}$", description="sha256 of the source files")
    source_uri: str = Field(pattern=r"^s3://")
    entry_point: str = Field(min_length=1)
    images: PublishedImages

    def image_for(self, *, gpu: bool) -> str | None:
        """The image for a GPU or CPU instance. A GPU instance may fall back to the CPU image
        (it runs there, without the GPU); a CPU instance never gets a CUDA image."""
        if gpu:
            return self.images.gpu or self.images.cpu
        return self.images.cpu


class PublishedCatalog(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    region: str
    bucket: str
    algorithms: dict[str, PublishedAlgorithm] = Field(default_factory=dict)

    def entry(self, algo_id: str) -> PublishedAlgorithm:
        """The published algorithm; :class:`BackendRejected` when it isn't published."""
        try:
            return self.algorithms[algo_id]
        except KeyError:
            raise BackendRejected(
                f"Algorithm `{algo_id}` isn't published for SageMaker yet; "
                "run `trainbot algorithms publish`.",
                hint="An admin publishes the preset algorithms once per code change.",
            ) from None

    def to_json(self) -> str:
        """Canonical text (sorted keys): publishing unchanged code writes identical bytes."""
        return json.dumps(self.model_dump(mode="json"), indent=2, sort_keys=True) + "\n"

    @classmethod
    def parse(cls, text: str | bytes, *, source: str = "catalog") -> PublishedCatalog:
        try:
            return cls.model_validate(json.loads(text))
        except (ValueError, ValidationError) as exc:  # JSONDecodeError is a ValueError
            raise BackendRejected(
                f"The published algorithm catalog at {source} is not valid.", hint=_PUBLISH_HINT
            ) from exc

    @classmethod
    def load(cls, source: str | Path, *, s3_client: Any = None) -> PublishedCatalog:
        """Read the catalog from a local file or an ``s3://`` URI.

        Raises :class:`BackendRejected` (with the publish hint) when it is missing or invalid,
        and lets other AWS errors (permissions, network) propagate as botocore errors.
        """
        text = str(source)
        if text.startswith("s3://"):
            return cls.parse(_read_s3(text, s3_client), source=text)
        path = Path(text)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise BackendRejected(
                f"No published algorithm catalog at {path}.", hint=_PUBLISH_HINT
            ) from None
        return cls.parse(raw, source=str(path))


def _read_s3(uri: str, s3_client: Any) -> bytes:
    if s3_client is None:
        from bot.aws import aws_client

        s3_client = aws_client("s3")
    from botocore.exceptions import ClientError

    bucket, key = split_s3_uri(uri)
    try:
        return s3_client.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
            raise BackendRejected(
                f"No published algorithm catalog at {uri}.", hint=_PUBLISH_HINT
            ) from exc
        raise
