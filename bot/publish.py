"""``trainbot algorithms publish``: package the preset algorithms for SageMaker.

    trainbot algorithms publish [--region R] [--bucket B] [--dry-run] [--out catalog.json]
                                [--algorithms-dir DIR]

For each algorithm folder: a deterministic ``sourcedir.tar.gz`` (sorted entries, fixed
mtime/owner, no ``__pycache__``) whose content digest names its S3 key,
``s3://B/trainbot/algorithms/<id>/<version>/<digest[:16]>/sourcedir.tar.gz`` — uploaded only
when that key is absent, so republishing unchanged code writes nothing. Training images come
from the sagemaker SDK (``pip install -e '.[publish]'``), imported only when publishing. The
catalog (:class:`~bot.adapters.algorithm_catalog.PublishedCatalog`) goes to
``s3://B/trainbot/catalog.json`` and to a local file (default ``bot/data/catalog.json``, which
the Lambda bundle carries); each is rewritten only when its content changed. Packing, naming,
uploading and resolving images are :mod:`bot.adapters.algorithm_shelf`'s, shared with
``trainbot algorithms add``.

For ``trainbot algorithms add/remove`` (a team's own algorithms; :mod:`bot.cli` parses,
:mod:`bot.services.registration` decides) this module chooses the shelf and words the result.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.adapters.algorithm_catalog import CATALOG_KEY, PublishedAlgorithm, PublishedCatalog
from bot.adapters.algorithm_shelf import (
    CPU_INSTANCE,
    FIXED_MTIME,
    GPU_INSTANCE,
    INSTALL_HINT,
    ImageResolver,
    LocalAlgorithmShelf,
    PublishError,
    S3AlgorithmShelf,
    build_sourcedir,
    fixed_image_resolver,
    pack_sourcedir,
    put_if_absent,
    resolve_images,
    sdk_image_resolver,
    source_key,
)
from bot.catalog import files_digest, read_source, source_digest, source_files
from bot.domain import Algorithm, ConfigError, InvalidInput, TrainbotError

if TYPE_CHECKING:
    from bot.config import Settings
    from bot.services.registration import AlgorithmShelf

__all__ = [
    "CPU_INSTANCE",
    "DEFAULT_OUT",
    "FIXED_MTIME",
    "GPU_INSTANCE",
    "INSTALL_HINT",
    "ImageResolver",
    "PublishError",
    "PublishResult",
    "build_sourcedir",
    "fixed_image_resolver",
    "main",
    "publish",
    "registered_json",
    "registered_text",
    "resolve_images",
    "sdk_image_resolver",
    "shelf_for",
    "source_digest",
    "source_files",
    "source_key",
]

DEFAULT_OUT = Path(__file__).parent / "data" / "catalog.json"


@dataclass
class PublishResult:
    catalog: PublishedCatalog
    uploaded: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    catalog_written: bool = False


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
        files = read_source(folder)  # read once: what is digested is what is uploaded
        digest = files_digest((f.name, f.data) for f in files)
        key = source_key(algorithm, digest)
        if dry_run or put_if_absent(
                s3_client, bucket, key, partial(pack_sourcedir, files),
                metadata={"trainbot-algorithm": algorithm.ref, "trainbot-sha256": digest}):
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


# -- `trainbot algorithms add/remove` (bot.cli parses; bot.services.registration decides) --

def shelf_for(settings: Settings, *, path: Path | None, image: str | None,
              manifest: str | None, cpu_image: str | None,
              gpu_image: str | None) -> AlgorithmShelf | None:
    """Where `algorithms add` keeps a folder's source: this machine's TRAINBOT_HOME (local
    compute) or the artifacts bucket (SageMaker); None for an image. Checks the options go
    together."""
    usage = "See `trainbot algorithms add --help`."
    if image:
        if path or cpu_image or gpu_image or not manifest:
            raise InvalidInput("--image goes with --manifest FILE alone.", hint=usage)
        return None
    if path is None or manifest:
        raise InvalidInput("Give the algorithm's folder (PATH), or --image with --manifest.",
                           hint=usage)
    if gpu_image and not cpu_image:
        raise InvalidInput("--gpu-image goes with --cpu-image (the image for CPU pools).")
    if settings.compute == "local":
        if cpu_image:
            raise InvalidInput("--cpu-image and --gpu-image choose SageMaker's training images; "
                               "local compute (TRAINBOT_COMPUTE=local) runs the script here.")
        return LocalAlgorithmShelf(settings.home / "algorithms")
    from bot.aws import aws_region

    if not settings.bucket:
        raise ConfigError("TRAINBOT_BUCKET is required with TRAINBOT_COMPUTE=sagemaker "
                          "(where registered algorithms are uploaded).")
    if cpu_image and not gpu_image:
        # Not silent: a CPU build on a GPU instance runs, slowly, at the GPU's price.
        print(f"note: GPU pools will run the --cpu-image too ({cpu_image}); give "
              "--gpu-image IMAGE for a CUDA build.", file=sys.stderr)
    resolve = fixed_image_resolver(cpu_image, gpu_image) if cpu_image else sdk_image_resolver()
    return S3AlgorithmShelf(bucket=settings.bucket, region=aws_region(), resolve_image=resolve)


def registered_json(algorithm: Algorithm) -> dict[str, object]:
    """A registered algorithm as `algorithms add/remove --json` prints it: the algorithm's
    data (as `trainbot --json algorithms`) plus where its source is and whether it is hidden."""
    from bot.views.data import algorithm_data

    source = algorithm.source
    assert source is not None  # only registered algorithms come here
    return {**algorithm_data(algorithm), "location": source.location,
            "images": dict(source.images), "hidden": source.hidden}


def registered_text(algorithm: Algorithm, *, removed: bool = False, changed: bool) -> str:
    """What `algorithms add` (``changed``: a new version) or `remove` (``changed``: it was
    shown until now) prints."""
    source = algorithm.source
    assert source is not None
    name = f"{algorithm.id} {algorithm.version} (sha256:{source.digest[:12]})"
    if removed:
        return (f"removed {algorithm.id} from new starts; its versions and history stay\n"
                if changed else f"{algorithm.id} was removed already\n")
    lines = [f"registered {name} — " + ("new version" if changed else
                                        "unchanged (already registered)")]
    lines += [f"  {kind} image: {image}" for kind, image in sorted(source.images.items())]
    lines += [f"  image: {source.image}"] if source.image else [f"  source: {source.location}"]
    if changed:
        lines.append(f"  start it: trainbot start {algorithm.id}")
    return "\n".join(lines) + "\n"
