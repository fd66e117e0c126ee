"""One local TensorBoard server over the runs folder, started on demand and shared.

The server's logdir is ``runs_dir``, so each run's ``output/tensorboard`` appears as the run
``<backend job name>/output/tensorboard`` (any framework that writes event files works, PyTorch
included). Its pid and port are kept in a state file (``state_dir/tensorboard.json``, by
default ``runs_dir/.tensorboard.json``): a restarted bot finds the server still answering and
reuses it rather than starting a second one.

The server is a separate process started with ``python -m tensorboard.main``; the tensorboard
package is never imported here (it is heavy, and this module is on the Slack path).
"""

from __future__ import annotations

import importlib.util
import json
import logging
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

from bot.adapters.local_runs import (
    process_status,
    read_json,
    signal_group,
    start_ticks,
    tail,
    write_json,
)
from bot.domain import BackendError

__all__ = ["LocalTensorBoard"]

log = logging.getLogger("trainbot.tensorboard")

_INSTALL_HINT = "Install it with `pip install 'trainbot[train]'` (or `pip install tensorboard`)."


class LocalTensorBoard:
    """A TensorBoard server for ``logdir``; ``port=0`` picks a free port at start.

    Thread-safe. Raises :class:`BackendError` when the server can't be started (tensorboard
    not installed, port taken by something else, no answer within ``start_timeout_s``).
    """

    def __init__(
        self,
        logdir: Path,
        *,
        port: int = 6006,
        host: str = "127.0.0.1",
        python: str = sys.executable,
        reload_interval_s: int = 5,
        start_timeout_s: float = 30.0,
        state_dir: Path | None = None,
    ) -> None:
        # Resolved: the server reports its logdir back, and _serves() compares the two.
        self.logdir = Path(logdir).resolve()
        self.port = port
        self.host = host
        self.python = python
        self.reload_interval_s = reload_interval_s
        self.start_timeout_s = start_timeout_s
        self.state_dir = Path(state_dir) if state_dir is not None else None
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

    def url_for(self, run: str) -> str:
        """A link to TensorBoard showing only ``run`` (a backend job name)."""
        # TensorBoard's frontend reads `runFilter` (a regex over run names) from the query;
        # run names here are "<job name>/output/tensorboard", job names plain [A-Za-z0-9-].
        return f"{self.ensure_started()}?{urlencode({'runFilter': run})}#timeseries"

    def running(self) -> bool:
        state = read_json(self.state_file)
        return isinstance(state, dict) and isinstance(state.get("port"), int) and self._serves(
            state["port"])

    def stop(self) -> None:
        """Stop the server this logdir's state file names (whoever started it)."""
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
        port = self.port or _free_port(self.host)
        if self.port and _answers(self.host, port):
            raise BackendError(
                f"Port {port} is already used by another server, so TensorBoard can't start.",
                hint="Set TRAINBOT_TENSORBOARD_PORT to a free port (0 picks one).")
        argv = [self.python, "-m", "tensorboard.main", "--logdir", str(self.logdir),
                "--host", self.host, "--port", str(port),
                "--reload_interval", str(self.reload_interval_s)]
        try:
            with self.log_file.open("ab") as out:
                # Its own session: the server outlives a bot restart and a Ctrl-C in its terminal.
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


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False
