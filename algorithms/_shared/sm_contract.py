"""The SageMaker training-container contract, seen from inside a training script.

Hyperparameters, channels, output paths, the cluster layout, SIGTERM and the way an expected
failure ends the job. Environment variables are those of the SageMaker training toolkit:
https://github.com/aws/sagemaker-training-toolkit/blob/master/ENVIRONMENT_VARIABLES.md

This module is copied verbatim into every algorithm folder, because each folder is uploaded
alone as SageMaker's source dir and algorithms cannot import each other;
tests/algorithms/test_shared_modules.py fails when the copies drift apart.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

__all__ = [
    "EXIT_STOPPED",
    "EXIT_USER_ERROR",
    "Cluster",
    "Param",
    "Paths",
    "StopSignal",
    "Stopped",
    "UserError",
    "channel_dir",
    "data_files",
    "format_metrics",
    "log",
    "read_hyperparameters",
    "run_main",
    "write_json",
]

EXIT_USER_ERROR = 2
# 128 + SIGTERM, what a shell reports for a process ended by the signal.
EXIT_STOPPED = 143

_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})


class UserError(Exception):
    """An expected failure (bad hyperparameter, bad data): one `ERROR:` line, exit status 2."""


class Stopped(Exception):
    """Training stopped on SIGTERM after saving what it could; the message says what."""


@dataclass(frozen=True)
class Param:
    """One hyperparameter, typed the way the algorithm's manifest.yml declares it."""

    name: str
    type: str  # int | float | bool | str | choice
    default: Any
    min: float | None = None
    max: float | None = None
    choices: tuple[str, ...] = ()

    def parse(self, raw: Any) -> Any:
        """Turn a value as SageMaker delivers it (often a string, maybe JSON-quoted) into
        this parameter's type, or raise UserError saying what was expected."""
        text = _unquote(raw) if isinstance(raw, str) else raw
        if self.type == "bool":
            return self._parse_bool(text)
        if self.type == "int":
            return self._check_range(self._parse_int(text))
        if self.type == "float":
            return self._check_range(self._parse_float(text))
        if self.type == "choice":
            return self._parse_choice(text)
        return str(text)

    def _fail(self, expected: str, raw: Any) -> NoReturn:
        raise UserError(f"hyperparameter {self.name}: expected {expected}, got {raw!r}")

    def _parse_bool(self, value: Any) -> bool:
        if isinstance(value, bool):
            return value
        lowered = str(value).strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        self._fail("true or false", value)

    def _parse_int(self, value: Any) -> int:
        if isinstance(value, bool):
            self._fail("an integer", value)
        try:
            number = float(value)
        except (TypeError, ValueError):
            self._fail("an integer", value)
        if not number.is_integer():
            self._fail("an integer", value)
        return int(number)

    def _parse_float(self, value: Any) -> float:
        if isinstance(value, bool):
            self._fail("a number", value)
        try:
            number = float(value)
        except (TypeError, ValueError):
            self._fail("a number", value)
        if not math.isfinite(number):
            self._fail("a finite number", value)
        return number

    def _parse_choice(self, value: Any) -> str:
        lowered = str(value).strip().lower()
        for choice in self.choices:
            if choice.lower() == lowered:
                return choice
        self._fail("one of " + ", ".join(self.choices), value)

    def _check_range(self, value: float) -> Any:
        low = -math.inf if self.min is None else self.min
        high = math.inf if self.max is None else self.max
        if not low <= value <= high:
            raise UserError(
                f"hyperparameter {self.name}={value} is out of range [{self.min}, {self.max}]"
            )
        return value


def _unquote(raw: str) -> str:
    # The SageMaker SDK JSON-encodes every hyperparameter value, so a string arrives as
    # '"adam"' and a float sometimes as '"0.01"'.
    text = raw.strip()
    while len(text) >= 2 and text[0] == text[-1] == '"':
        try:
            decoded = json.loads(text)
        except ValueError:
            break
        if not isinstance(decoded, str):
            break
        text = decoded.strip()
    return text


def read_hyperparameters(
    schema: Sequence[Param],
    argv: Sequence[str],
    env: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Defaults, overridden by SM_HPS (or hyperparameters.json), overridden by `--key value`.

    Names SageMaker adds itself (`sagemaker_*`, `_tuning_objective_metric`) are ignored; any
    other unknown name is an error, so a typo never trains with a silent default.
    """
    env = os.environ if env is None else env
    by_name = {param.name: param for param in schema}
    raw: dict[str, Any] = {}
    raw.update(_hyperparameters_from_env(env))
    raw.update(_hyperparameters_from_argv(by_name, argv))
    unknown = sorted(
        key for key in raw if key not in by_name and not key.startswith(("sagemaker_", "_"))
    )
    if unknown:
        raise UserError(
            f"unknown hyperparameter {', '.join(unknown)}; known: {', '.join(sorted(by_name))}"
        )
    return {
        name: param.parse(raw[name]) if name in raw else param.default
        for name, param in by_name.items()
    }


def _hyperparameters_from_env(env: Mapping[str, str]) -> dict[str, Any]:
    if env.get("SM_HPS"):
        return _json_object(env["SM_HPS"], "SM_HPS")
    config_dir = Path(env.get("SM_INPUT_CONFIG_DIR", "/opt/ml/input/config"))
    path = config_dir / "hyperparameters.json"
    if not path.is_file():
        return {}
    return _json_object(path.read_text(encoding="utf-8"), str(path))


def _json_object(text: str, where: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise UserError(f"{where} is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise UserError(f"{where} must be a JSON object of hyperparameters")
    return value


class _ArgumentParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UserError(f"command line: {message}")


def _hyperparameters_from_argv(by_name: Mapping[str, Param], argv: Sequence[str]) -> dict[str, Any]:
    # Script mode passes every hyperparameter as `--name value`; launchers may add their own
    # flags (`--local-rank`), hence parse_known_args.
    parser = _ArgumentParser(add_help=False, allow_abbrev=False)
    for name in by_name:
        flags = {f"--{name}", f"--{name.replace('_', '-')}"}
        parser.add_argument(*sorted(flags), dest=name, default=None)
    known, extra = parser.parse_known_args(list(argv))
    stray = [arg for arg in extra if arg.startswith("--") and not _launcher_flag(arg)]
    if stray:
        raise UserError(
            f"unknown command-line option {stray[0]}; known: {', '.join(sorted(by_name))}"
        )
    return {name: value for name, value in vars(known).items() if value is not None}


def _launcher_flag(arg: str) -> bool:
    name = arg[2:].split("=", 1)[0].replace("-", "_")
    return name == "local_rank" or name.startswith(("sagemaker_", "_"))


@dataclass(frozen=True)
class Paths:
    """Where outputs go. All from the environment, so a local runner can move the root."""

    model_dir: Path
    output_dir: Path
    output_data_dir: Path
    checkpoint_dir: Path
    tensorboard_dir: Path

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Paths:
        env = os.environ if env is None else env
        return cls(
            model_dir=Path(env.get("SM_MODEL_DIR", "/opt/ml/model")),
            output_dir=Path(env.get("SM_OUTPUT_DIR", "/opt/ml/output")),
            output_data_dir=Path(env.get("SM_OUTPUT_DATA_DIR", "/opt/ml/output/data")),
            checkpoint_dir=Path(env.get("SM_CHECKPOINT_DIR", "/opt/ml/checkpoints")),
            tensorboard_dir=Path(env.get("SM_TENSORBOARD_DIR", "/opt/ml/output/tensorboard")),
        )


def channel_dir(name: str, env: Mapping[str, str] | None = None) -> Path | None:
    """The directory of input channel `name`, or None when the channel is absent or empty
    (the algorithm then falls back to its built-in dataset)."""
    env = os.environ if env is None else env
    value = env.get(f"SM_CHANNEL_{name.upper()}")
    if not value:
        return None
    path = Path(value)
    if not path.is_dir():
        raise UserError(f"channel {name}: {path} is not a directory")
    if not data_files(path):
        return None
    return path


def data_files(root: Path, suffixes: Iterable[str] = ()) -> list[Path]:
    """Files under `root` (recursively, as an S3 prefix is copied), hidden ones skipped."""
    wanted = tuple(suffix.lower() for suffix in suffixes)
    found = []
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root).parts
        if any(part.startswith(".") for part in relative) or not path.is_file():
            continue
        if not wanted or path.name.lower().endswith(wanted):
            found.append(path)
    return found


@dataclass(frozen=True)
class Cluster:
    """The hosts of this training job (SM_HOSTS / SM_CURRENT_HOST / SM_RESOURCE_CONFIG)."""

    hosts: tuple[str, ...]
    current_host: str
    num_gpus: int | None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Cluster:
        env = os.environ if env is None else env
        resource = _json_or_none(env.get("SM_RESOURCE_CONFIG"))
        resource = resource if isinstance(resource, dict) else {}
        hosts = _json_or_none(env.get("SM_HOSTS")) or resource.get("hosts") or []
        current = env.get("SM_CURRENT_HOST") or resource.get("current_host") or ""
        gpus = env.get("SM_NUM_GPUS", "").strip()
        return cls(
            hosts=tuple(str(host) for host in hosts) if isinstance(hosts, list) else (),
            current_host=str(current),
            num_gpus=int(gpus) if gpus.isdigit() else None,
        )

    @property
    def is_leader(self) -> bool:
        """True on the first host, or when the job has one host (or none declared)."""
        return len(self.hosts) <= 1 or self.current_host in ("", self.hosts[0])


def _json_or_none(text: str | None) -> Any:
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


class StopSignal:
    """Turns SIGTERM (SageMaker's stop and spot interruption) into a flag that the training
    loop polls at points where it can checkpoint; SIGINT is treated the same for local runs."""

    def __init__(self) -> None:
        self.received: str | None = None

    def install(self) -> StopSignal:
        signal.signal(signal.SIGTERM, self._handle)
        signal.signal(signal.SIGINT, self._handle)
        return self

    @property
    def requested(self) -> bool:
        return self.received is not None

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        self.received = signal.Signals(signum).name


def format_metrics(metrics: Mapping[str, float]) -> str:
    """`name=value` pairs, the form the manifest's metric regexes capture."""
    return " ".join(f"{name}={value:.6g}" for name, value in metrics.items())


def log(message: str) -> None:
    """One line to stdout, flushed at once so CloudWatch and metric regexes see it live."""
    print(message, flush=True)


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    os.replace(partial, path)


def run_main(main: Callable[[Sequence[str]], None]) -> NoReturn:
    """Run `main(argv)` and map its outcome to the exit status SageMaker reads.

    UserError: one `ERROR:` line on stderr, the same text in `<SM_OUTPUT_DIR>/failure` (which
    SageMaker shows as the job's FailureReason), exit 2. Stopped: exit 143. Anything else is
    a bug and keeps its traceback.
    """
    try:
        main(sys.argv[1:])
    except UserError as exc:
        message = " ".join(str(exc).split())
        print(f"ERROR: {message}", file=sys.stderr, flush=True)
        _write_failure(message)
        sys.exit(EXIT_USER_ERROR)
    except Stopped as exc:
        log(str(exc))
        sys.exit(EXIT_STOPPED)
    except Exception as exc:
        _write_failure(f"internal error {type(exc).__name__}: {exc} (traceback in the log)")
        raise
    sys.stdout.flush()
    sys.exit(0)


def _write_failure(message: str) -> None:
    try:
        output_dir = Paths.from_env().output_dir
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / "failure").write_text(message[:1024] + "\n", encoding="utf-8")
    except OSError:
        pass  # best effort: the stderr line already carries the reason
