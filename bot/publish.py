"""``trainbot algorithms publish``: package the preset algorithms for SageMaker.

    trainbot algorithms publish [--region R] [--bucket B] [--dry-run] [--out catalog.json]
                                [--algorithms-dir DIR]

For each algorithm folder: a deterministic ``sourcedir.tar.gz`` (sorted entries, fixed
mtime/owner, no ``__pycache__``) whose content digest names its S3 key,
``s3://B/trainbot/algorithms/<id>/<version>/<digest[:16]>/sourcedir.tar.gz`` — uploaded only
when that key is absent, so republishing unchanged code writes nothing. Training images come
from the sagemaker SDK (``pip install -e '.[publish]'``), imported only here and only when
publishing. The catalog (:class:`~bot.adapters.algorithm_catalog.PublishedCatalog`) goes to
``s3://B/trainbot/catalog.json`` and to a local file (default ``bot/data/catalog.json``, which
the Lambda bundle carries); each is rewritten only when its content changed.
"""

from __future__ import annotations

import argparse
import gzip
import io
import os
import sys
import tarfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.adapters.algorithm_catalog import (
    CATALOG_KEY,
    PublishedAlgorithm,
    PublishedCatalog,
    PublishedImages,
)
from bot.catalog import source_digest, source_files
from bot.domain import Algorithm, ConfigError, TrainbotError

__all__ = [
    "DEFAULT_OUT",
    "ImageResolver",
    "PublishError",
    "PublishResult",
    "build_sourcedir",
    "main",
    "publish",
    "sdk_image_resolver",
    "source_digest",
    "source_files",
    "source_key",
]

DEFAULT_OUT = Path(__file__).parent / "data" / "catalog.json"
CPU_INSTANCE = "ml.m5.xlarge"
GPU_INSTANCE = "ml.g5.xlarge"
FIXED_MTIME = 315532800  # 1980-01-01: the oldest time every archive tool handles
INSTALL_HINT = ("Publishing needs the sagemaker SDK (about 1 GB, never in the Lambda bundle): "
                "pip install -e '.[publish]'")

# (algorithm, region, instance type) → training image URI; raises when there is none.
ImageResolver = Callable[[Algorithm, str, str], str]


class PublishError(TrainbotError):
    pass


@dataclass
class PublishResult:
    catalog: PublishedCatalog
    uploaded: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    catalog_written: bool = False


# -- the source tarball -------------------------------------------------------------------------

def build_sourcedir(root: Path) -> bytes:
    """``sourcedir.tar.gz`` as SageMaker script mode expects it (files at the top level), byte
    for byte the same for the same files: fixed mtimes, owner and gzip header."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, path in source_files(root):
            data = path.read_bytes()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = FIXED_MTIME
            info.mode = 0o755 if os.access(path, os.X_OK) else 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
    packed = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=packed, mtime=0) as gz:
        gz.write(raw.getvalue())
    return packed.getvalue()


def source_key(algorithm: Algorithm, digest: str) -> str:
    return f"trainbot/algorithms/{algorithm.id}/{algorithm.version}/{digest[:16]}/sourcedir.tar.gz"


# -- images --------------------------------------------------------------------------------------

def sdk_image_resolver() -> ImageResolver:
    """Training images from the sagemaker SDK's offline tables (``image_uris.retrieve``)."""
    try:
        from sagemaker.core import image_uris
    except ImportError as exc:
        raise PublishError(INSTALL_HINT) from exc

    def resolve(algorithm: Algorithm, region: str, instance_type: str) -> str:
        return str(image_uris.retrieve(
            framework=algorithm.framework, region=region,
            version=algorithm.framework_version, py_version=algorithm.py_version,
            instance_type=instance_type, image_scope="training",
        ))

    return resolve


def fixed_image_resolver(cpu_image: str, gpu_image: str | None) -> ImageResolver:
    """Your own training images (a private ECR build, or any image on a local AWS endpoint)
    instead of the AWS Deep Learning Containers; no sagemaker SDK needed."""

    def resolve(algorithm: Algorithm, region: str, instance_type: str) -> str:
        return gpu_image if gpu_image and instance_type == GPU_INSTANCE else cpu_image

    return resolve


def resolve_images(algorithm: Algorithm, region: str, resolve: ImageResolver) -> PublishedImages:
    """The CPU and GPU images; a framework without one of them (no CUDA build) leaves it out."""
    found: dict[str, str | None] = {}
    problems = []
    for kind, instance_type in (("cpu", CPU_INSTANCE), ("gpu", GPU_INSTANCE)):
        try:
            found[kind] = resolve(algorithm, region, instance_type)
        except (ValueError, KeyError) as exc:  # the SDK's "unsupported" errors
            found[kind] = None
            problems.append(f"{kind}: {exc}")
    if not any(found.values()):
        raise PublishError(
            f"No training image for {algorithm.id} ({algorithm.framework} "
            f"{algorithm.framework_version}, {algorithm.py_version}) in {region}: "
            + "; ".join(problems))
    return PublishedImages(**found)


# -- publishing ----------------------------------------------------------------------------------

def publish(
    algorithms: Mapping[str, Algorithm],
    root: Path,
    *,
    bucket: str,
    region: str,
    resolve_image: ImageResolver,
    s3_client: Any = None,
    dry_run: bool = False,
) -> PublishResult:
    """Upload what changed and write the catalog to S3. ``dry_run`` makes no S3 call at all
    (``uploaded`` then lists what a real run would upload if it is absent)."""
    entries: dict[str, PublishedAlgorithm] = {}
    result = PublishResult(catalog=PublishedCatalog(region=region, bucket=bucket))
    for algo_id, algorithm in sorted(algorithms.items()):
        folder = root / algo_id
        if not (folder / algorithm.entry_point).is_file():
            raise PublishError(f"{folder} has no entry point {algorithm.entry_point}")
        digest = source_digest(folder)
        if digest is None:  # the entry point was just found in it
            raise PublishError(f"{folder} is not a folder")
        key = source_key(algorithm, digest)
        if dry_run or not _exists(s3_client, bucket, key):
            if not dry_run:
                s3_client.put_object(
                    Bucket=bucket, Key=key, Body=build_sourcedir(folder),
                    ContentType="application/gzip",
                    Metadata={"trainbot-algorithm": algorithm.ref, "trainbot-sha256": digest})
            result.uploaded.append(algo_id)
        else:
            result.unchanged.append(algo_id)
        entries[algo_id] = PublishedAlgorithm(
            version=algorithm.version, digest=digest, source_uri=f"s3://{bucket}/{key}",
            entry_point=algorithm.entry_point,
            images=resolve_images(algorithm, region, resolve_image),
        )
    result.catalog = PublishedCatalog(region=region, bucket=bucket, algorithms=entries)
    if not dry_run:
        result.catalog_written = _put_if_changed(
            s3_client, bucket, CATALOG_KEY, result.catalog.to_json().encode())
    return result


def write_local(catalog: PublishedCatalog, path: Path) -> bool:
    """Write the catalog file atomically; False when it already had this content."""
    text = catalog.to_json()
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)
    return True


def _exists(s3: Any, bucket: str, key: str) -> bool:
    from botocore.exceptions import ClientError

    try:
        s3.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return False
        raise  # 403 here usually means s3:ListBucket is missing (S3 hides absence then)
    return True


def _put_if_changed(s3: Any, bucket: str, key: str, body: bytes) -> bool:
    from botocore.exceptions import ClientError

    try:
        if s3.get_object(Bucket=bucket, Key=key)["Body"].read() == body:
            return False
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey", "NotFound"):
            raise
    s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json")
    return True


# -- the command ---------------------------------------------------------------------------------

def main(
    argv: Sequence[str] | None = None,
    *,
    resolve_image: ImageResolver | None = None,
    s3_client: Any = None,
) -> int:
    """Run the command; 0 on success, 2 for a usage/config problem, 1 for an AWS failure.

    ``resolve_image`` and ``s3_client`` are testing seams (defaults: the SDK, boto3)."""
    args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        from bot.catalog import load_algorithms
        from bot.config import load_settings

        settings = load_settings()
        bucket = args.bucket or settings.bucket
        region = args.region or os.environ.get("AWS_REGION") or os.environ.get(
            "AWS_DEFAULT_REGION")
        if not bucket:
            raise ConfigError("Say where to publish: --bucket B or TRAINBOT_BUCKET.")
        if not region:
            raise ConfigError("Say which region: --region R or AWS_REGION.")
        if args.gpu_image and not args.cpu_image:
            raise ConfigError("--gpu-image goes with --cpu-image (the image for CPU pools).")
        if args.cpu_image and not args.gpu_image:
            # Not silent: a CPU build on a GPU instance runs, slowly, at the GPU's price.
            print(f"note: GPU pools will run the --cpu-image too ({args.cpu_image}); give "
                  "--gpu-image IMAGE for a CUDA build.", file=sys.stderr)
        resolver = resolve_image or (
            fixed_image_resolver(args.cpu_image, args.gpu_image) if args.cpu_image
            else sdk_image_resolver())
        root = args.algorithms_dir or settings.algorithms_dir
        algorithms = load_algorithms(root)
        if not algorithms:
            raise ConfigError(f"No algorithms under {root}.")
        s3 = s3_client
        if s3 is None and not args.dry_run:
            from bot.aws import aws_client

            s3 = aws_client("s3")
        result = publish(algorithms, root, bucket=bucket, region=region,
                         resolve_image=resolver, s3_client=s3, dry_run=args.dry_run)
    except TrainbotError as exc:
        print(f"error: {exc.user_text()}", file=sys.stderr)
        return 2
    except Exception as exc:
        return _aws_failure(exc)
    _report(result, bucket=bucket, dry_run=args.dry_run)
    if args.dry_run:
        print(result.catalog.to_json(), end="")
        return 0
    out = args.out or DEFAULT_OUT
    print(f"catalog file {out}: {'written' if write_local(result.catalog, out) else 'unchanged'}")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trainbot algorithms publish",
        description="Package the preset algorithms and publish them for SageMaker.")
    parser.add_argument("--region", help="AWS region of the images (default: AWS_REGION)")
    parser.add_argument("--bucket", help="S3 bucket (default: TRAINBOT_BUCKET)")
    parser.add_argument("--dry-run", action="store_true",
                        help="show the catalog; write nothing, call nothing in S3")
    parser.add_argument("--out", type=Path, help=f"catalog file (default: {DEFAULT_OUT})")
    parser.add_argument("--cpu-image", help="use this training image instead of resolving the "
                        "AWS Deep Learning Container (no sagemaker SDK needed)")
    parser.add_argument("--gpu-image", help="with --cpu-image: the image for GPU pools "
                        "(default: the CPU image)")
    parser.add_argument("--algorithms-dir", type=Path,
                        help="algorithm folders (default: TRAINBOT_ALGORITHMS_DIR)")
    return parser


def _report(result: PublishResult, *, bucket: str, dry_run: bool) -> None:
    for algo_id, entry in sorted(result.catalog.algorithms.items()):
        state = ("would upload if absent" if dry_run else
                 "uploaded" if algo_id in result.uploaded else "unchanged")
        print(f"{algo_id} {entry.version} sha256:{entry.digest[:12]} {state}: {entry.source_uri}")
        for kind, image in (("cpu", entry.images.cpu), ("gpu", entry.images.gpu)):
            print(f"    {kind} image: {image or '(none)'}")
    if not dry_run:
        state = "written" if result.catalog_written else "unchanged"
        print(f"catalog s3://{bucket}/{CATALOG_KEY}: {state}")
    else:
        print("dry run: nothing was written")


def _aws_failure(exc: Exception) -> int:
    from botocore.exceptions import BotoCoreError, ClientError

    if not isinstance(exc, ClientError | BotoCoreError):
        raise exc
    from bot.adapters.sagemaker.errors import translate

    print(f"error: {translate(exc).user_text()}", file=sys.stderr)
    return 1
