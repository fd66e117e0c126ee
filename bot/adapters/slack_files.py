"""The FileInbox port over Slack: a file shared in the channel becomes data for training.

A user names a Slack file by its id (``F0123ABCD``) or its link (the permalink
``https://<team>.slack.com/files/U…/F…/<name>``, or the ``url_private`` one
``https://files.slack.com/files-pri/T…-F…/<name>``; on a Slack stand-in, the same paths on
the Web API's own host). :meth:`SlackFileInbox.fetch` then:

1. asks ``files.info`` (bot token, ``files:read``) about it;
2. lets the user have it only when it is shared in the channel they asked from
   (``channels``/``groups``/``ims``) or is their own (``user``; a modal's ``file_input``
   uploads are shared nowhere). A file that doesn't exist, was deleted or can't be seen all
   get one answer, :data:`NOT_VISIBLE`: anything more tells a user which files exist;
3. checks its size and type (by the name's extension) before downloading anything;
4. downloads ``url_private_download`` with ``Authorization: Bearer <bot token>`` — the token
   goes to Slack's own hosts only and never along a redirect — hashing it while streaming
   to a temporary file. Slack answers a bad token with its sign-in page (HTML, HTTP 200):
   that is refused, never stored as data (https://api.slack.com/types/file#auth);
5. hands it to a :class:`~bot.adapters.file_store.FileStorage`, which keeps the bytes once
   by their SHA-256.

Failures are domain errors with a message and a hint; Slack's own error codes go through
:func:`bot.slack.notifier.slack_call`.
"""

from __future__ import annotations

import hashlib
import html
import os
import re
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bot.adapters.file_store import FileStorage, safe_name
from bot.domain import BackendError, ChatUndelivered, InvalidInput, NotAllowed
from bot.ports import StoredFile
from bot.slack.notifier import slack_call

__all__ = ["DEFAULT_TYPES", "MAX_BYTES", "NOT_VISIBLE", "SlackFileInbox", "slack_file_id"]

MAX_BYTES = 10 * 1024 * 1024  # Slack's own limit for a file_input's files
DEFAULT_TYPES = ("csv", "tsv", "json", "jsonl", "txt", "parquet", "npz", "npy", "zip", "gz")
NOT_VISIBLE = "I can't use that file: share it in this channel first (or use one of yours)."
_CHUNK = 1 << 16
_SHOWN_MAX = 80

_FILE_ID = re.compile(r"F[A-Z0-9]{8,}")
_PERMALINK = re.compile(r"/files/[UW][A-Z0-9]+/(?P<id>F[A-Z0-9]{8,})(/[^/]*)?/?")
_PRIVATE_URL = re.compile(r"/files-pri/[A-Z0-9]+-(?P<id>F[A-Z0-9]{8,})(/.*)?")
_TOKEN_ERRORS = ("not_authed", "invalid_auth", "token_revoked", "token_expired",
                 "account_inactive")


def _is_slack_host(host: str) -> bool:
    return host == "slack.com" or host.endswith(".slack.com")


def slack_file_id(value: str, *, own_netloc: str | None = None) -> str | None:
    """The file id ``value`` names — an id, a permalink or a ``url_private`` link, also as
    Slack writes a link in text (``<url|label>``, or ``&lt;url&gt;`` escaped) — or None.

    Links count on ``*.slack.com`` (https) and on ``own_netloc`` (``host:port`` of a Slack
    stand-in's Web API), nowhere else.
    """
    text = value.strip()
    if text.startswith("&lt;") and text.endswith("&gt;"):
        text = text[4:-4]
    elif text.startswith("<") and text.endswith(">"):
        text = text[1:-1]
    text = html.unescape(text.partition("|")[0].strip())
    if _FILE_ID.fullmatch(text):
        return text
    try:
        parts = urlsplit(text)
        host = (parts.hostname or "").lower()
        netloc = parts.netloc.lower()
    except ValueError:
        return None
    slack = parts.scheme == "https" and _is_slack_host(host)
    own = own_netloc is not None and parts.scheme in ("http", "https") and netloc == own_netloc
    if not (slack or own):
        return None
    found = _PERMALINK.fullmatch(parts.path) or _PRIVATE_URL.fullmatch(parts.path)
    return found["id"] if found else None


def _netloc(base_url: str | None) -> str | None:
    """The Web API's ``host:port`` when it isn't Slack's own (a stand-in)."""
    if not base_url:
        return None
    parts = urlsplit(base_url)
    host = (parts.hostname or "").lower()
    return None if not host or _is_slack_host(host) else parts.netloc.lower()


def _shown(name: str) -> str:
    name = name.replace("`", "'")
    return name if len(name) <= _SHOWN_MAX else name[:_SHOWN_MAX] + "…"


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} bytes"
    value, unit = (n / 1024, "KB") if n < 1024 * 1024 else (n / 1024 / 1024, "MB")
    return f"{value:.1f}".removesuffix(".0") + f" {unit}"


def _extension(name: str) -> str:
    return name.rsplit(".", 1)[-1].lower() if "." in name.strip(".") else ""


class SlackFileInbox:
    """Files shared in Slack, fetched with the bot's ``WebClient`` and kept in ``storage``.

    ``max_bytes``: the largest file taken (default 10 MB, as a ``file_input``'s).
    ``allowed_types``: extensions taken (lowercase, no dot). ``token``: the bot token
    (default: the client's). ``timeout_s``: for the download.
    """

    def __init__(self, client: Any, storage: FileStorage, *, max_bytes: int = MAX_BYTES,
                 allowed_types: Iterable[str] = DEFAULT_TYPES, token: str | None = None,
                 timeout_s: float = 60.0) -> None:
        self.client = client
        self.storage = storage
        self.max_bytes = max_bytes
        self.allowed_types = tuple(t.lower().lstrip(".") for t in allowed_types)
        self.token = token or getattr(client, "token", None) or ""
        self.timeout_s = timeout_s
        self._own = _netloc(getattr(client, "base_url", None))

    # -- the port ---------------------------------------------------------------------------

    def is_file_reference(self, value: str) -> bool:
        return slack_file_id(value, own_netloc=self._own) is not None

    def owns(self, uri: str) -> bool:
        return self.storage.owns(uri)

    def fetch(self, reference: str, *, user: str, channel: str | None) -> StoredFile:
        file_id = slack_file_id(reference, own_netloc=self._own)
        if file_id is None:
            raise InvalidInput(f"`{_shown(reference)}` isn't a Slack file.",
                               hint="Name a file shared in this channel by its link "
                                    "(…/files/U…/F…/name) or its id (F…).")
        file = self._info(file_id)
        if not _visible(file, user=user, channel=channel):
            raise NotAllowed(NOT_VISIBLE)
        name = str(file.get("name") or file_id)
        self._check(file, name)
        path, sha256, size = self._download(file, name)
        try:
            uri = self.storage.put(path, sha256=sha256, name=safe_name(name))
        finally:
            path.unlink(missing_ok=True)
        return StoredFile(uri=uri, name=safe_name(name), sha256=sha256, size=size,
                          origin=f"slack:{file_id}")

    # -- steps ------------------------------------------------------------------------------

    def _info(self, file_id: str) -> dict[str, Any]:
        try:
            response = slack_call(self.client.files_info, file=file_id)
        except ChatUndelivered as exc:
            if exc.code in ("file_not_found", "file_deleted"):
                raise NotAllowed(NOT_VISIBLE) from exc
            if exc.code == "missing_scope":
                raise BackendError(
                    "trainbot can't read Slack files: its Slack app lacks the files:read scope.",
                    hint="Add files:read to the bot scopes (infra/slack-app-manifest.yml) "
                         "and reinstall the app.") from exc
            if exc.code in _TOKEN_ERRORS:
                raise BackendError(f"Slack refused trainbot's token ({exc.code}).",
                                   hint="Check SLACK_BOT_TOKEN.") from exc
            raise BackendError(f"Slack didn't tell trainbot about that file ({exc.code}).",
                               hint="Try again in a minute.") from exc
        file = response.get("file")
        if not isinstance(file, dict) or file.get("mode") == "tombstone":
            raise NotAllowed(NOT_VISIBLE)  # a deleted file's remains
        return file

    def _check(self, file: dict[str, Any], name: str) -> None:
        if file.get("is_external"):
            raise InvalidInput(f"`{_shown(name)}` is a link to a file outside Slack.",
                               hint="Upload the file itself into the channel.")
        size = int(file.get("size") or 0)
        if size > self.max_bytes:
            raise InvalidInput(
                f"`{_shown(name)}` is {_size(size)}; trainbot takes files up to "
                f"{_size(self.max_bytes)} from Slack.",
                hint="Put bigger data in S3 (or a local data folder) and name it with "
                     "`--data CHANNEL=URI`.")
        kind = _extension(name) or str(file.get("filetype") or "")
        if kind not in self.allowed_types:
            what = f"a .{kind} file" if kind else "a file with no extension"
            raise InvalidInput(
                f"`{_shown(name)}` is {what}; trainbot takes "
                f"{', '.join('.' + t for t in self.allowed_types)} files from Slack.",
                hint="Share the data in one of those formats.")

    def _download(self, file: dict[str, Any], name: str) -> tuple[Path, str, int]:
        """Stream the file into the storage's scratch folder: (its path, SHA-256, size)."""
        url = str(file.get("url_private_download") or file.get("url_private") or "")
        if not self._may_send_token(url):
            raise BackendError(f"Slack gave no download address for `{_shown(name)}` that "
                               "trainbot sends its token to.",
                               hint="Download it from Slack and put it in S3 instead.")
        request = urllib.request.Request(url, method="GET")
        # Unredirected: the token goes to this URL only, never to where it redirects.
        request.add_unredirected_header("Authorization", f"Bearer {self.token}")
        fd, temp = tempfile.mkstemp(prefix="slack-", suffix=".part", dir=self.storage.scratch)
        path = Path(temp)
        try:
            with os.fdopen(fd, "wb") as out:
                sha256, size = self._stream(request, out, name)
            expected = file.get("size")
            if isinstance(expected, int) and expected != size:
                raise BackendError(f"The download of `{_shown(name)}` from Slack was incomplete "
                                   f"({size} of {expected} bytes).", hint="Try again.")
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return path, sha256, size

    def _stream(self, request: urllib.request.Request, out: Any, name: str) -> tuple[str, int]:
        digest = hashlib.sha256()
        size = 0
        try:
            with self._opener().open(request, timeout=self.timeout_s) as response:
                length = response.headers.get("Content-Length")
                if _is_html(response.headers.get("Content-Type", ""), b""):
                    raise _sign_in_page(name)
                if length and length.isdigit() and int(length) > self.max_bytes:
                    raise self._too_big(name, int(length))
                head = b""
                while chunk := response.read(_CHUNK):
                    if len(head) < 512:
                        head += chunk[:512 - len(head)]
                        if _is_html("", head):
                            raise _sign_in_page(name)
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise self._too_big(name, size)
                    digest.update(chunk)
                    out.write(chunk)
        except urllib.error.HTTPError as exc:
            raise BackendError(f"Slack didn't hand over `{_shown(name)}` (HTTP {exc.code}).",
                               hint="Try again in a minute.") from exc
        except (OSError, TimeoutError) as exc:  # URLError is an OSError
            raise BackendError(f"couldn't download `{_shown(name)}` from Slack "
                               f"({type(exc).__name__}).", hint="Try again in a minute.") from exc
        return digest.hexdigest(), size

    def _too_big(self, name: str, size: int) -> InvalidInput:
        return InvalidInput(f"`{_shown(name)}` is over {_size(self.max_bytes)} "
                            f"({_size(size)} so far); trainbot takes files up to "
                            f"{_size(self.max_bytes)} from Slack.",
                            hint="Put bigger data in S3 (or a local data folder) and name it "
                                 "with `--data CHANNEL=URI`.")

    def _may_send_token(self, url: str) -> bool:
        """Slack's own hosts over https, or the stand-in's Web API host."""
        try:
            parts = urlsplit(url)
        except ValueError:
            return False
        host = (parts.hostname or "").lower()
        if parts.scheme == "https" and _is_slack_host(host):
            return True
        return self._own is not None and parts.scheme in ("http", "https") \
            and parts.netloc.lower() == self._own

    def _opener(self) -> urllib.request.OpenerDirector:
        """urllib with the Web API client's TLS context and proxy, when it has them."""
        handlers: list[urllib.request.BaseHandler] = []
        if getattr(self.client, "ssl", None) is not None:
            handlers.append(urllib.request.HTTPSHandler(context=self.client.ssl))
        if getattr(self.client, "proxy", None):
            proxy = self.client.proxy
            handlers.append(urllib.request.ProxyHandler({"http": proxy, "https": proxy}))
        return urllib.request.build_opener(*handlers)


def _visible(file: dict[str, Any], *, user: str, channel: str | None) -> bool:
    """Shared where the user asked from, or the user's own file."""
    if file.get("user") == user:
        return True
    if channel is None:
        return False
    return any(channel in (file.get(key) or []) for key in ("channels", "groups", "ims"))


def _is_html(content_type: str, head: bytes) -> bool:
    if content_type.split(";")[0].strip().lower() in ("text/html", "application/xhtml+xml"):
        return True
    start = head.lstrip()[:15].lower()
    return start.startswith((b"<!doctype html", b"<html"))


def _sign_in_page(name: str) -> BackendError:
    return BackendError(
        f"Slack answered with its sign-in page instead of `{_shown(name)}`: trainbot's token "
        "can't read files.",
        hint="Check SLACK_BOT_TOKEN and that the app has the files:read scope (then "
             "reinstall it).")
