"""Where a file handed over in the chat is kept for training: content-addressed, once.

A :class:`FileStorage` takes a downloaded file (a temporary path, its SHA-256 and a safe
name) and returns the URI training reads it from:

- :class:`LocalFileStorage`: ``<root>/<sha256>/<name>`` (folders 0700, files 0600), made by
  a hard link from the download, which never replaces anything: two stores of the same
  bytes race harmlessly and the bytes are on disk once (a second name for them is a second
  link). ``root`` must be among the local data folders (``TRAINBOT_DATA_DIRS``) for
  ``file:///…`` to pass the data guard.
- :class:`S3FileStorage`: ``s3://BUCKET/trainbot/data/<team>/<sha256>/<name>``,
  ``HeadObject`` first and a conditional ``PutObject`` (``If-None-Match: *``) when absent,
  encrypted as the bucket is (SSE-S3, or SSE-KMS with ``kms_key_id``).

Standard library only (boto3's client is passed in).
"""

from __future__ import annotations

import base64
import errno
import os
import re
import stat
from pathlib import Path
from typing import Any, Protocol

from bot.adapters.local_data import local_path
from bot.domain import BackendError, ConfigError

__all__ = ["DATA_PREFIX", "FileStorage", "LocalFileStorage", "S3FileStorage", "safe_name"]

DATA_PREFIX = "trainbot/data"
_NAME_MAX = 120
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_TEAM = re.compile(r"[A-Za-z0-9_-]{1,64}")
_DIR_MODE = 0o700
_FILE_MODE = 0o600


class FileStorage(Protocol):
    """Keeps downloaded files where training reads them."""

    @property
    def scratch(self) -> Path | None:
        """The folder downloads should be written to first (the same file system as the
        store, for an atomic link), or None for the system's temporary folder."""
        ...

    def put(self, path: Path, *, sha256: str, name: str) -> str:
        """Store the file at ``path`` (its SHA-256 is ``sha256``) as ``name``; the URI of
        the stored file. The same bytes under the same name are stored once. ``path`` is
        left for the caller to remove."""
        ...

    def owns(self, uri: str) -> bool:
        """Whether ``uri`` points into this store (or trainbot's own part of its bucket):
        only a fetch may put such a URI in a spec, never a user's typing."""
        ...


def safe_name(name: str) -> str:
    """A file name that is safe in a path, an S3 key and a URI: the last path part of
    ``name``, letters, digits, ``.``, ``_`` and ``-`` only, no leading dot, at most 120
    characters with the extension kept; ``data`` when nothing is left."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = _UNSAFE.sub("_", base).lstrip("._") or "data"
    if len(cleaned) > _NAME_MAX:
        stem, dot, ext = cleaned.rpartition(".")
        ext = ext[:16] if dot and stem else ""
        cleaned = cleaned[:_NAME_MAX - len(ext) - 1] + "." + ext if ext else cleaned[:_NAME_MAX]
    return cleaned


def _checked(sha256: str, name: str) -> None:
    if not _SHA256.fullmatch(sha256) or safe_name(name) != name:
        raise ValueError("a stored file needs a lowercase hex SHA-256 and a safe name")


class LocalFileStorage:
    """Files under ``root`` (``$TRAINBOT_HOME/data`` by default), ``root/<sha256>/<name>``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).expanduser()

    @property
    def scratch(self) -> Path:
        folder = self.root / ".incoming"
        _private_dir(folder)
        return folder

    def owns(self, uri: str) -> bool:
        path = local_path(uri)
        if path is None or not path.is_absolute():
            return False
        root = self.root.resolve()
        try:
            resolved = path.resolve()
        except (OSError, RuntimeError):
            return True  # a path that can't be resolved near the store is refused too
        return resolved == root or root in resolved.parents

    def put(self, path: Path, *, sha256: str, name: str) -> str:
        _checked(sha256, name)
        folder = self.root / sha256
        target = folder / name
        try:
            _private_dir(folder)
            # The bytes once: a second name for the same content links the first one.
            source = next((p for p in folder.iterdir()
                           if p != target and not p.name.startswith(".") and p.is_file()), path)
            _link(source, target)
            if stat.S_IMODE(target.stat().st_mode) != _FILE_MODE:
                target.chmod(_FILE_MODE)  # whoever made the download, the stored file is private
        except OSError as exc:
            raise BackendError(
                f"couldn't keep the file in {self.root} ({exc.strerror or exc}).",
                hint="Check that the folder is writable by the user running trainbot.",
            ) from exc
        return target.as_uri()


def _private_dir(folder: Path) -> None:
    folder.mkdir(mode=_DIR_MODE, parents=True, exist_ok=True)
    if (folder.stat().st_mode & 0o777) != _DIR_MODE:
        folder.chmod(_DIR_MODE)  # mkdir's mode is masked by the umask


def _link(source: Path, target: Path) -> None:
    """``target`` becomes ``source``'s bytes unless it exists: never a partial file, never
    a replaced one."""
    try:
        os.link(source, target)
    except FileExistsError:
        return  # the same bytes (the folder is their hash), stored already
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EXDEV, errno.EMLINK):
            raise
        # No hard links here (some network and FAT file systems): a private copy, renamed
        # into place; a concurrent store of the same bytes wins or loses harmlessly.
        partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
        with source.open("rb") as src, os.fdopen(
                os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as out:
            while chunk := src.read(1 << 20):
                out.write(chunk)
        if target.exists():
            partial.unlink()
        else:
            os.replace(partial, target)


class S3FileStorage:
    """Files in ``s3://bucket/trainbot/data/<team>/<sha256>/<name>``."""

    scratch = None

    def __init__(self, s3_client: Any, bucket: str, team: str, *,
                 kms_key_id: str | None = None) -> None:
        if not _TEAM.fullmatch(team):
            raise ConfigError(f"{team!r} can't be part of an S3 key (letters, digits, _ and -).")
        self.s3 = s3_client
        self.bucket = bucket
        self.team = team
        self.kms_key_id = kms_key_id

    def key(self, sha256: str, name: str) -> str:
        return f"{DATA_PREFIX}/{self.team}/{sha256}/{name}"

    def owns(self, uri: str) -> bool:
        # Everything under trainbot/ in trainbot's bucket is trainbot's: files shared in
        # Slack, algorithm sources, other jobs' outputs and models.
        return uri.rstrip("/").startswith(f"s3://{self.bucket}/trainbot")

    def put(self, path: Path, *, sha256: str, name: str) -> str:
        from botocore.exceptions import BotoCoreError, ClientError

        _checked(sha256, name)
        key = self.key(sha256, name)
        uri = f"s3://{self.bucket}/{key}"
        try:
            if self._exists(key):
                return uri
            with path.open("rb") as body:
                self.s3.put_object(
                    Bucket=self.bucket, Key=key, Body=body, IfNoneMatch="*",
                    ChecksumSHA256=base64.b64encode(bytes.fromhex(sha256)).decode(),
                    Metadata={"trainbot-sha256": sha256}, **self._encryption())
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
                return uri  # stored meanwhile by another request: the same bytes
            raise BackendError(
                f"couldn't store the file in s3://{self.bucket} ({code or 'error'}).",
                hint=f"The function's role needs s3:GetObject and s3:PutObject on "
                     f"{DATA_PREFIX}/* in that bucket (and s3:ListBucket on it).") from exc
        except BotoCoreError as exc:
            raise BackendError(f"couldn't reach S3 to store the file ({type(exc).__name__}).",
                               hint="Try again in a minute.") from exc
        return uri

    def _exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.s3.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise  # 403: s3:ListBucket is missing, and S3 hides absence then
        return True

    def _encryption(self) -> dict[str, str]:
        if self.kms_key_id:
            return {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": self.kms_key_id}
        return {"ServerSideEncryption": "AES256"}
