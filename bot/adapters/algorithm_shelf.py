"""Where algorithm source dirs are kept, and how they are packed for SageMaker.

Two shelves for :class:`bot.services.registration.AlgorithmShelf`:

* :class:`LocalAlgorithmShelf` (the embedded default) copies a registered folder's files to
  ``$TRAINBOT_HOME/algorithms/<id>/<digest>/`` (folders 0700, files 0600): into a temporary
  folder first, then renamed into place, so a folder of that name is always whole.
* :class:`S3AlgorithmShelf` uploads the deterministic ``sourcedir.tar.gz`` to
  ``s3://B/trainbot/algorithms/<id>/<version>/<digest[:16]>/sourcedir.tar.gz`` — only when that
  key is absent — and resolves the CPU and GPU training images.

Both are content-addressed: the same files again write nothing. ``trainbot algorithms
publish`` (:mod:`bot.publish`) packs, names and uploads the presets with the same functions.
"""

from __future__ import annotations

import gzip
import io
import os
import shutil
import tarfile
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from bot.adapters.algorithm_catalog import PublishedImages
from bot.catalog import SourceFile, read_source
from bot.domain import Algorithm, TrainbotError
from bot.services.registration import Shelved

__all__ = [
    "CPU_INSTANCE",
    "FIXED_MTIME",
    "GPU_INSTANCE",
    "INSTALL_HINT",
    "ImageResolver",
    "LocalAlgorithmShelf",
    "PublishError",
    "S3AlgorithmShelf",
    "build_sourcedir",
    "fixed_image_resolver",
    "pack_sourcedir",
    "put_if_absent",
    "resolve_images",
    "sdk_image_resolver",
    "source_key",
]

CPU_INSTANCE = "ml.m5.xlarge"
GPU_INSTANCE = "ml.g5.xlarge"
FIXED_MTIME = 315532800  # 1980-01-01: the oldest time every archive tool handles
INSTALL_HINT = ("Publishing needs the sagemaker SDK (about 1 GB, never in the Lambda bundle): "
                "pip install -e '.[publish]'")

# (algorithm, region, instance type) → training image URI; raises when there is none.
ImageResolver = Callable[[Algorithm, str, str], str]


class PublishError(TrainbotError):
    pass


# -- the source tarball -------------------------------------------------------------------------

def pack_sourcedir(files: Sequence[SourceFile]) -> bytes:
    """``sourcedir.tar.gz`` as SageMaker script mode expects it (files at the top level), byte
    for byte the same for the same files: fixed mtimes, owner and gzip header."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for file in sorted(files, key=lambda f: f.name):
            info = tarfile.TarInfo(file.name)
            info.size = len(file.data)
            info.mtime = FIXED_MTIME
            info.mode = 0o755 if file.executable else 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(file.data))
    packed = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=packed, mtime=0) as gz:
        gz.write(raw.getvalue())
    return packed.getvalue()


def build_sourcedir(root: Path) -> bytes:
    """A preset's ``sourcedir.tar.gz``: its folder with the shared modules beside it."""
    return pack_sourcedir(read_source(root))


def source_key(algorithm: Algorithm, digest: str) -> str:
    return f"trainbot/algorithms/{algorithm.id}/{algorithm.version}/{digest[:16]}/sourcedir.tar.gz"


def put_if_absent(s3: Any, bucket: str, key: str, body: Callable[[], bytes], *,
                  metadata: Mapping[str, str]) -> bool:
    """Upload ``body()`` to a content-addressed key unless it is there; True if uploaded."""
    from botocore.exceptions import ClientError

    try:
        s3.head_object(Bucket=bucket, Key=key)
        return False
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey", "NotFound"):
            raise  # 403 here usually means s3:ListBucket is missing (S3 hides absence then)
    s3.put_object(Bucket=bucket, Key=key, Body=body(), ContentType="application/gzip",
                  Metadata=dict(metadata))
    return True


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
            + "; ".join(problems),
            hint="Name your own with --cpu-image (and --gpu-image).")
    return PublishedImages(**found)


# -- the shelves ---------------------------------------------------------------------------------

class LocalAlgorithmShelf:
    """Registered source dirs as folders under ``root`` (``$TRAINBOT_HOME/algorithms``),
    readable by their owner only, where the local compute runs them from."""

    def __init__(self, root: Path) -> None:
        self._root = root

    def shelve(self, algorithm: Algorithm, files: Sequence[SourceFile],
               digest: str) -> Shelved:
        folder = self._root / algorithm.id / digest
        if folder.is_dir():
            return Shelved(location=folder.as_uri(), written=False)
        parent = folder.parent
        _private_dirs(parent)
        staging = Path(tempfile.mkdtemp(prefix=f".{digest[:16]}-", dir=parent))  # 0700
        try:
            for file in files:
                target = staging / file.name
                _private_dirs(target.parent, stop=staging)
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as out:
                    out.write(file.data)
            try:
                staging.rename(folder)
            except OSError:
                if not folder.is_dir():  # not "another registration got there first"
                    raise
                return Shelved(location=folder.as_uri(), written=False)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return Shelved(location=folder.as_uri(), written=True)


def _private_dirs(path: Path, *, stop: Path | None = None) -> None:
    """``mkdir -p`` with every folder it creates 0700 (mkdir's mode is masked by the umask)."""
    missing = []
    while not path.exists() and path != stop:
        missing.append(path)
        path = path.parent
    for folder in reversed(missing):
        folder.mkdir(mode=0o700, exist_ok=True)
        folder.chmod(0o700)


class S3AlgorithmShelf:
    """Registered source dirs as ``sourcedir.tar.gz`` in the artifacts bucket, where SageMaker
    script mode downloads them, with the framework's training images for CPU and GPU pools."""

    def __init__(self, *, bucket: str, region: str, resolve_image: ImageResolver,
                 client: Any = None) -> None:
        self._bucket = bucket
        self._region = region
        self._resolve = resolve_image
        if client is None:
            from bot.aws import aws_client

            client = aws_client("s3")
        self._s3 = client

    def shelve(self, algorithm: Algorithm, files: Sequence[SourceFile],
               digest: str) -> Shelved:
        # Images first: an algorithm SageMaker has no image for uploads nothing.
        images = resolve_images(algorithm, self._region, self._resolve)
        key = source_key(algorithm, digest)
        written = put_if_absent(
            self._s3, self._bucket, key, lambda: pack_sourcedir(files),
            metadata={"trainbot-algorithm": algorithm.ref, "trainbot-sha256": digest})
        return Shelved(location=f"s3://{self._bucket}/{key}",
                       images={k: v for k, v in (("cpu", images.cpu), ("gpu", images.gpu)) if v},
                       written=written)
