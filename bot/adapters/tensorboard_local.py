"""One local TensorBoard server over the runs' TensorBoard folders, started on demand and shared.

The server never scans the runs folder itself (a run's inputs may be large, or not the bot's
to show): its logdir is a folder of symlinks, ``<logdir>/<backend job name>`` → that run's
``output/tensorboard``, made when a run's link is first asked for. Any framework that writes
event files works, PyTorch included. Its pid and port are kept in a state file
(``state_dir/tensorboard.json``): a restarted bot finds the server still answering and reuses
it rather than starting a second one.

Lifecycle: a server belongs to the process that started (or adopted) it and is stopped when
that process exits (:func:`stop_owned`, registered with :mod:`atexit`), together with its
data server (the whole process group). ``detach=True`` leaves it running for later processes
— what the short-lived CLI does, so ``trainbot tb`` reuses the server ``start --wait`` left.

A port that is taken: with ``port_fallback`` the next free port is used, as TensorBoard does
itself when ``--port`` isn't given; otherwise it is a :class:`BackendError`.

The server is a separate process started with ``python -m tensorboard.main``; the tensorboard
package is never imported here (it is heavy, and this module is on the Slack path).
"""

from __future__ import annotations

import atexit
import errno
import importlib.util
import json
import logging
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlencode

from bot.adapters.local.runs import (
    process_status,
    read_json,
    signal_group,
    start_ticks,
    tail,
    write_json,
)
from bot.domain import BackendError

__all__ = ["LocalTensorBoard", "stop_owned"]

log = logging.getLogger("trainbot.tensorboard")

_INSTALL_HINT = "Install it with `pip install 'trainbot[train]'` (or `pip install tensorboard`)."
_RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")  # a backend job name, no path
FALLBACK_PORTS = 100  # how far past a taken port to look (TensorBoard itself tries 10)

_owned: set[LocalTensorBoard] = set()
_owned_lock = threading.Lock()
_atexit_registered = False


def stop_owned() -> None:
    """Stop every server this process started or adopted (not the ``detach=True`` ones)."""
    with _owned_lock:
        boards = list(_owned)
        _owned.clear()
    for board in boards:
        try:
            board.stop()
        except Exception:  # at exit: one failure mustn't keep the others running
            log.exception("stopping TensorBoard for %s failed", board.logdir)


def _own(board: LocalTensorBoard) -> None:
    global _atexit_registered
    with _owned_lock:
        _owned.add(board)
        if not _atexit_registered:
            atexit.register(stop_owned)
            _atexit_registered = True


class LocalTensorBoard:
    """A TensorBoard server for the runs under ``runs_dir``; ``port=0`` picks a free port.

    The server's logdir is ``logdir`` (default: ``state_dir/tensorboard``, else
    ``runs_dir/.tensorboard``), holding only symlinks to runs' TensorBoard folders.

    Thread-safe. Raises :class:`BackendError` when the server can't be started (tensorboard
    not installed, port taken and no fallback, no answer within ``start_timeout_s``); the last
    such error stays in :attr:`last_error`, so a caller can say why there's no link.
    """

    def __init__(
        self,
        runs_dir: Path,
        *,
        port: int = 6006,
        port_fallback: bool = False,
        detach: bool = False,
        host: str = "127.0.0.1",
        python: str = sys.executable,
        reload_interval_s: int = 5,
        start_timeout_s: float = 30.0,
        state_dir: Path | None = None,
        logdir: Path | None = None,
    ) -> None:
        self.runs_dir = Path(runs_dir).resolve()
        self.state_dir = Path(state_dir) if state_dir is not None else None
        if logdir is None:
            logdir = (self.state_dir / "tensorboard" if self.state_dir is not None
                      else self.runs_dir / ".tensorboard")
        # Resolved: the server reports its logdir back, and _serves() compares the two.
        self.logdir = Path(logdir).resolve()
        self.port = port
        self.port_fallback = port_fallback
        self.detach = detach
        self.last_error: BackendError | None = None
        self.host = host
        self.python = python
        self.reload_interval_s = reload_interval_s
        self.start_timeout_s = start_timeout_s
        self._lock = threading.Lock()
        self._serving_port: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def state_file(self) -> Path:
        """The server's pid and port (in ``state_dir``, else hidden in the logdir)."""
        if self.state_dir is not None:
            return self.state_dir / "tensorboard.json"
        return self.logdir / ".tensorboard.json"

    @property
    def log_file(self) -> Path:
        return self.state_file.with_suffix(".log")

    def ensure_started(self) -> str:
        """The server's base URL (``http://host:port/``), starting a server if none serves
        this logdir yet."""
        with self._lock:
            try:
                url = self._ensure_started()
            except BackendError as exc:
                self.last_error = exc
                raise
            self.last_error = None
            if not self.detach:
                _own(self)
            return url

    def _ensure_started(self) -> str:
        if self._serving_port is not None and self._serves(self._serving_port):
            return self._base(self._serving_port)
        state = read_json(self.state_file)
        if isinstance(state, dict) and isinstance(state.get("port"), int):
            if self._serves(state["port"]):
                self._serving_port = state["port"]
                return self._base(state["port"])
            self._kill(state)  # ours but not answering (hung): replace it
        self._serving_port = self._start()
        return self._base(self._serving_port)

    def url_for(self, run: str, *, events_dir: Path | None = None) -> str:
        """A link to TensorBoard showing only ``run`` (a backend job name), whose event files
        are in ``events_dir`` (default ``runs_dir/<run>/output/tensorboard``)."""
        self.add_run(run, events_dir or self.runs_dir / run / "output" / "tensorboard")
        # TensorBoard's frontend reads `runFilter` (a regex over run names) from the query;
        # run names are the symlinks' names, job names plain [A-Za-z0-9-].
        return f"{self.ensure_started()}?{urlencode({'runFilter': run})}#timeseries"

    def add_run(self, run: str, events_dir: Path) -> None:
        """Show ``events_dir`` as the run ``run``: a symlink in the logdir (idempotent)."""
        if not _RUN_NAME.match(run):
            raise BackendError(f"{run!r} isn't a run name TensorBoard can show.")
        link = self.logdir / run
        self.logdir.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() and Path(link.readlink()) == Path(events_dir):
            return
        link.unlink(missing_ok=True)
        link.symlink_to(events_dir, target_is_directory=True)

    def running(self) -> bool:
        state = read_json(self.state_file)
        return isinstance(state, dict) and isinstance(state.get("port"), int) and self._serves(
            state["port"])

    def stop(self) -> None:
        """Stop the server this logdir's state file names (whoever started it), and its
        data server with it."""
        with _owned_lock:
            _owned.discard(self)
        with self._lock:
            state = read_json(self.state_file)
            if isinstance(state, dict):
                self._kill(state)
            self.state_file.unlink(missing_ok=True)
            self._serving_port = None

    # -- internals --------------------------------------------------------------------------

    def _base(self, port: int) -> str:
        return f"http://{self.host}:{port}/"

    def _start(self) -> int:
        if self.python == sys.executable and importlib.util.find_spec("tensorboard") is None:
            raise BackendError("TensorBoard is not installed.", hint=_INSTALL_HINT)
        self.logdir.mkdir(parents=True, exist_ok=True)
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        port = self._pick_port()
        argv = [self.python, "-m", "tensorboard.main", "--logdir", str(self.logdir),
                "--host", self.host, "--port", str(port),
                "--reload_interval", str(self.reload_interval_s)]
        try:
            with self.log_file.open("ab") as out:
                # Its own session and process group: a Ctrl-C in the bot's terminal doesn't
                # reach it, and stop() signals the group — TensorBoard and the data server
                # (`tensorboard_data_server`) it spawns — so neither outlives the other.
                proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        except OSError as exc:
            raise BackendError(f"Couldn't start TensorBoard: {exc.strerror}.") from exc
        self._proc = proc
        write_json(self.state_file, {"pid": proc.pid, "ticks": start_ticks(proc.pid),
                                     "port": port, "host": self.host,
                                     "logdir": str(self.logdir)})
        self._wait_ready(proc, port)
        log.info("TensorBoard for %s serves %s", self.logdir, self._base(port))
        return port

    def _pick_port(self) -> int:
        if not self.port:
            return _free_port(self.host)
        last = self.port + (FALLBACK_PORTS if self.port_fallback else 0)
        for port in range(self.port, min(last, 65535) + 1):
            if _available(self.host, port):
                if port != self.port:
                    log.info("port %d is taken; TensorBoard uses %d", self.port, port)
                return port
        if self.port_fallback:
            raise BackendError(
                f"Ports {self.port}–{last} are all in use, so TensorBoard can't start.",
                hint="Set TRAINBOT_TENSORBOARD_PORT to a free port (0 picks one).")
        raise BackendError(
            f"Port {self.port} is already in use, so TensorBoard can't start.",
            hint=f"TRAINBOT_TENSORBOARD_PORT={self.port} is set: set it to a free port "
                 "(0 picks one), or unset it to use the next free port after 6006.")

    def _wait_ready(self, proc: subprocess.Popen[bytes], port: int) -> None:
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                self.state_file.unlink(missing_ok=True)
                last = tail(self.log_file, 20)
                if any("No module named" in line and "tensorboard" in line for line in last):
                    raise BackendError(f"TensorBoard is not installed for {self.python}.",
                                       hint=_INSTALL_HINT)
                raise BackendError("TensorBoard exited at start: "
                                   + (last[-1] if last else f"exit code {proc.returncode}"))
            if self._serves(port):
                return
            time.sleep(0.2)
        self._kill({"pid": proc.pid, "ticks": start_ticks(proc.pid)})
        self.state_file.unlink(missing_ok=True)
        raise BackendError(f"TensorBoard didn't answer within {self.start_timeout_s:g} s.")

    def _serves(self, port: int) -> bool:
        """True when a TensorBoard on ``port`` answers and serves this very logdir."""
        try:
            with urllib.request.urlopen(f"{self._base(port)}data/environment", timeout=2) as r:
                env = json.loads(r.read())
        except (OSError, ValueError, urllib.error.URLError):
            return False
        return isinstance(env, dict) and env.get("data_location") == str(self.logdir)

    def _kill(self, state: dict[str, object]) -> None:
        pid, ticks = state.get("pid"), state.get("ticks")
        if not isinstance(pid, int) or process_status(pid, ticks if isinstance(ticks, int)
                                                      else None) != "running":
            self._reap()
            return
        signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline and process_status(pid, None) == "running":
            self._reap()
            time.sleep(0.1)
        if process_status(pid, None) == "running":
            signal_group(pid, signal.SIGKILL)
        self._reap()

    def _reap(self) -> None:
        # A server this process started stays a zombie until waited for.
        if self._proc is not None and self._proc.poll() is not None:
            self._proc = None


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _available(host: str, port: int) -> bool:
    """Nothing listens on ``host:port`` (also not on the wildcard address)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # As TensorBoard's own server does: a port whose old connections linger in
        # TIME_WAIT is free; only a listener makes the bind fail.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True
