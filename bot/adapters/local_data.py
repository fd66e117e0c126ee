"""Local data for local runs: which files a request may name, and a read-only copy for the run.

Who asked decides what may be read. The CLI acts as the OS user, who may name any file they
can read (``trusted``). Anyone else — a Slack user, through a bot that runs as that OS user —
may only name files under the allow-listed folders (``TRAINBOT_DATA_DIRS``), checked after
resolving every symlink, so a link in the data folder can't reach out of it. ``/proc``,
``/sys`` and ``/dev`` are never data, for anyone (``/proc/self/environ`` is the bot's own
environment; ``/dev/zero`` never ends).

For an untrusted request, a path that is refused and a path that does not exist get the same
message: otherwise the answer tells a Slack user which files exist on the bot's machine.
Messages name the URI the user gave, never a resolved or staging path.

A channel reaches the run as a copy (files 0444, folders 0555) in a folder of its own: the
script can't change the user's data through its channel, and a non-root script can't write
into the channel at all. Copying, rather than linking, also means what the run reads is what
was checked (symlinks inside a folder are checked one by one, then copied as what they point
to). Standard library only: this module is on the Slack path.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
from collections.abc import Mapping, Sequence
from pathlib import Path
from urllib.parse import unquote, urlparse

from bot.domain import InvalidInput

__all__ = [
    "NEVER_READ",
    "LocalData",
    "checked_data",
    "local_path",
    "remove_staged",
]

# Not data, whoever asks and whatever is allow-listed.
NEVER_READ = (Path("/proc"), Path("/sys"), Path("/dev"))
_NEVER = "is under /proc, /sys or /dev, which are never data"
_URI_SHOWN_MAX = 200
_FILE_MODE = 0o444
_DIR_MODE = 0o555


class LocalData:
    """The allow-list for local data and the read-only staging of a channel.

    ``allowed``: the folders untrusted requests may read from (``TRAINBOT_DATA_DIRS``). A
    folder that doesn't exist yet allows nothing until it does.
    """

    def __init__(self, allowed: Sequence[Path]) -> None:
        self.allowed = [Path(p).expanduser() for p in allowed]

    def resolve(self, uri: str, *, trusted: bool) -> Path:
        """The real path (symlinks resolved) of a ``file:///…`` URI or plain absolute path.

        Raises :class:`InvalidInput` naming ``uri``: for an untrusted request one message for
        everything refused (missing, outside the allow-list, unreadable, not a file or folder);
        for a trusted one a message that says which.
        """
        given = local_path(uri)
        if given is None or not given.is_absolute():
            raise _refused(uri, trusted=trusted, why="isn't a file:/// URI or an absolute path")
        # Both the path as written (".." folded) and the real one: /dev/fd/N resolves elsewhere.
        if _never_read(Path(os.path.normpath(given))):
            raise _refused(uri, trusted=trusted, why=_NEVER)
        try:
            real = given.resolve(strict=True)
            st = real.stat()
        except (OSError, RuntimeError, ValueError):  # missing, a loop, a NUL byte
            raise _refused(uri, trusted=trusted, why="does not exist on this machine") from None
        self._check(real, st, uri, trusted=trusted)
        return real

    def checked(self, data: Mapping[str, str], *, trusted: bool) -> dict[str, str]:
        """``data`` (channel → URI) with every local path checked and written as ``file:///…``.

        Other URIs (``s3://``, ``builtin:``) pass through unchanged, as do values that aren't
        paths at all (the spec's own validation words those). Raises like :meth:`resolve`.
        """
        out = {}
        for channel, uri in data.items():
            path = local_path(uri)
            if path is None:
                out[channel] = uri
                continue
            # The path as given (not the resolved one): the spec keeps what the user named.
            self.resolve(uri, trusted=trusted)  # its words name the URI as the user wrote it
            out[channel] = uri if uri.startswith("file:") else path.as_uri()
        return out

    def stage(self, uri: str, target: Path, *, trusted: bool) -> None:
        """Copy what ``uri`` names into the new folder ``target``, read-only.

        A file lands as ``target/<its name>``; a folder's contents as ``target/…`` (a SageMaker
        channel is always a folder). Inside a folder, symlinks are checked like ``uri`` itself
        and copied as what they point to; a link back to a folder already copied is skipped,
        and so are pipes, sockets and devices. Raises :class:`InvalidInput` like :meth:`resolve`
        (``target`` may then hold a partial copy: remove it with :func:`remove_staged`).
        """
        real = self.resolve(uri, trusted=trusted)
        given = local_path(uri)
        assert given is not None  # resolve() refused anything else
        target.mkdir(parents=True)
        if real.is_dir():
            self._copy_tree(real, target, uri, trusted=trusted, seen={real})
        else:
            self._copy_file(real, target / given.name, uri, trusted=trusted)
        target.chmod(_DIR_MODE)

    # -- checks and copies --------------------------------------------------------------------

    def _check(self, real: Path, st: os.stat_result, uri: str, *, trusted: bool) -> None:
        mode = st.st_mode
        if _never_read(real, st.st_dev):
            raise _refused(uri, trusted=trusted, why=_NEVER)
        if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            raise _refused(uri, trusted=trusted, why="isn't a regular file or folder")
        if not trusted and not any(real.is_relative_to(root) for root in self._roots()):
            raise _refused(uri, trusted=False, why="")
        if not os.access(real, os.R_OK | (os.X_OK if stat.S_ISDIR(mode) else 0)):
            raise _refused(uri, trusted=trusted, why="isn't readable by this user")

    def _roots(self) -> list[Path]:
        roots = []
        for folder in self.allowed:
            with contextlib.suppress(OSError, RuntimeError):
                roots.append(folder.resolve(strict=True))
        return roots

    def _copy_tree(self, src: Path, dst: Path, uri: str, *, trusted: bool,
                   seen: set[Path]) -> None:
        try:
            entries = sorted(os.scandir(src), key=lambda e: e.name)
        except OSError:
            raise _refused(uri, trusted=trusted, why="couldn't be read") from None
        for entry in entries:
            path = Path(entry.path)
            try:
                real = path.resolve(strict=True) if entry.is_symlink() else path
                st = real.stat()
            except (OSError, RuntimeError):
                continue  # a dangling link inside the folder: nothing to copy
            if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
                continue  # pipes, sockets, devices: not data, and a pipe would block the copy
            self._check(real, st, uri, trusted=trusted)
            if stat.S_ISDIR(st.st_mode):
                if real in seen:
                    continue
                (dst / entry.name).mkdir()
                self._copy_tree(real, dst / entry.name, uri, trusted=trusted,
                                seen=seen | {real})
                (dst / entry.name).chmod(_DIR_MODE)
            else:
                self._copy_file(real, dst / entry.name, uri, trusted=trusted)

    @staticmethod
    def _copy_file(src: Path, dst: Path, uri: str, *, trusted: bool) -> None:
        # O_NOFOLLOW + O_NONBLOCK, then fstat: what is opened is the regular file just checked,
        # not a link or a pipe swapped in since (the real path has no links left to follow).
        flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
        try:
            fd = os.open(src, flags)
        except OSError:
            raise _refused(uri, trusted=trusted, why="couldn't be read") from None
        with os.fdopen(fd, "rb") as source:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise _refused(uri, trusted=trusted, why="isn't a regular file or folder")
            with dst.open("xb") as out:
                shutil.copyfileobj(source, out, 1 << 20)
        dst.chmod(_FILE_MODE)


def local_path(uri: str) -> Path | None:
    """The path a ``file:`` URI or a plain ``/absolute/path`` names; None for other schemes.

    ``file://host/…`` (a remote host) is not a local path: it comes back relative, which
    :meth:`LocalData.resolve` refuses.
    """
    if uri.startswith("/"):
        return Path(uri)
    if not uri.startswith("file:"):
        return None
    parsed = urlparse(uri)
    path = unquote(parsed.path)
    if parsed.netloc not in ("", "localhost"):
        return Path(path.lstrip("/") or ".")
    return Path(path)


def checked_data(data: Mapping[str, str], *, allowed: Sequence[Path],
                 trusted: bool) -> dict[str, str]:
    """:meth:`LocalData.checked` without keeping a :class:`LocalData` around: for validating
    a request before any version exists."""
    return LocalData(allowed).checked(data, trusted=trusted)


def remove_staged(folder: Path) -> None:
    """Remove a staged copy (its folders are read-only, so make them writable first)."""
    if not folder.exists():
        return
    for dirpath, _dirs, _files in os.walk(folder):
        with contextlib.suppress(OSError):
            os.chmod(dirpath, 0o700)
    shutil.rmtree(folder, ignore_errors=True)


def _never_read(path: Path, device: int | None = None) -> bool:
    if any(path == root or path.is_relative_to(root) for root in NEVER_READ):
        return True
    # procfs or sysfs mounted somewhere else too (a container's /host/proc): same device.
    return device is not None and device in _kernel_devices()


def _kernel_devices() -> set[int]:
    devices = set()
    with contextlib.suppress(OSError):
        root = os.stat("/").st_dev
        for special in ("/proc", "/sys"):
            dev = os.stat(special).st_dev
            if dev != root:  # not a mount of its own here: its device says nothing
                devices.add(dev)
    return devices


def _refused(uri: str, *, trusted: bool, why: str) -> InvalidInput:
    shown = uri if len(uri) <= _URI_SHOWN_MAX else uri[:_URI_SHOWN_MAX] + "…"
    if trusted:
        return InvalidInput(f"`{shown}` {why}.")
    # One answer for missing and refused alike: anything more tells a Slack user what exists.
    return InvalidInput(
        f"`{shown}` isn't a file or folder trainbot may read here.",
        hint="Put data under $TRAINBOT_HOME/data (or a folder in TRAINBOT_DATA_DIRS) and name "
             "it as file:///… or a plain path.")
