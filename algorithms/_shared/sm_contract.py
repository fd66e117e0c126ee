"""The SageMaker training-container contract, seen from inside a training script.

Hyperparameters, channels, output paths, the cluster layout, SIGTERM and the way an expected
failure ends the job. Environment variables are those of the SageMaker training toolkit:
https://github.com/aws/sagemaker-training-toolkit/blob/master/ENVIRONMENT_VARIABLES.md

It lives once, in algorithms/_shared; publishing and the local runner lay it beside each
algorithm's train.py, because each folder is uploaded alone as SageMaker's source dir.
Hyperparameter values are accepted and typed exactly as the bot validates them
(`HyperParameter.coerce` in bot/domain/algorithm.py), so a job the bot accepts never fails
here on a value and a value the bot refuses is refused here too;
tests/unit/test_algorithm_contract_agreement.py keeps the two in step.
"""

from __future__ import annotations

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

_TRUE = frozenset({"true", "1", "yes", "on", "y", "t"})
_FALSE = frozenset({"false", "0", "no", "off", "n", "f"})
MAX_STR_VALUE = 256


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
        """Turn a value (command-line text, or a JSON value from SM_HPS) into this
        parameter's type, or raise UserError saying what was expected.

        Text is never JSON-decoded here (a str parameter keeps `"x"` with its quotes): the
        one decoding SageMaker's encoding needs happens where hyperparameters.json is read.
        """
        if self.type == "bool":
            return self._parse_bool(raw)
        if self.type == "int":
            return self._check_range(self._parse_int(raw))
        if self.type == "float":
            return self._check_range(self._parse_float(raw))
        text = str(raw)
        if self.type == "choice":
            if text not in self.choices:
                self._fail("one of " + ", ".join(self.choices), raw)
            return text
        if len(text) > MAX_STR_VALUE:
            self._fail(f"text of at most {MAX_STR_VALUE} characters", raw)
        return text

    def _fail(self, expected: str, raw: Any) -> NoReturn:
        shown = raw if not isinstance(raw, str) or len(raw) <= 40 else raw[:40] + "…"
        raise UserError(f"hyperparameter {self.name}: expected {expected}, got {shown!r}")

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
        # Integer text only ("3", not "3.0" or "3e0"); a JSON number must be integral.
        if isinstance(value, bool):
            self._fail("an integer", value)
        if isinstance(value, float):
            if not value.is_integer():
                self._fail("an integer", value)
            return int(value)
        try:
            return int(str(value).strip(), 10)
        except (ValueError, OverflowError):
            self._fail("an integer", value)

    def _parse_float(self, value: Any) -> float:
        if isinstance(value, bool):
            self._fail("a number", value)
        try:
            number = float(str(value).strip())
        except (ValueError, OverflowError):
            self._fail("a number", value)
        if not math.isfinite(number):
            self._fail("a finite number", value)
        return number

    def _check_range(self, value: float) -> Any:
        if (self.min is not None and value < self.min) or (
            self.max is not None and value > self.max
        ):
            raise UserError(
                f"hyperparameter {self.name}={value} is out of range [{self.min}, {self.max}]"
            )
        return value


def read_hyperparameters(
    schema: Sequence[Param],
    argv: Sequence[str],
    env: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Defaults, overridden by SM_HPS (or hyperparameters.json), overridden by `--key value`.

    Where the values come from, in the forms SageMaker's training toolkit produces them
    (https://github.com/aws/sagemaker-training-toolkit/blob/master/src/sagemaker_training/environment.py):
    hyperparameters.json maps each name to a JSON-encoded string (`3` as the text `3`, `adam`
    as the text `"adam"`, quotes included), which is decoded once, falling back to the text
    itself when it is not JSON; SM_HPS holds those decoded values; the command line holds
    them as text (`str(value)`).

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
    return {
        name: _json_decoded(value)
        for name, value in _json_object(path.read_text(encoding="utf-8"), str(path)).items()
    }


def _json_decoded(value: Any) -> Any:
    # What the toolkit does to each value of hyperparameters.json: CreateTrainingJob takes
    # strings only, so the SDK (and the bot) send json.dumps(value).
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


def _json_object(text: str, where: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise UserError(f"{where} is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise UserError(f"{where} must be a JSON object of hyperparameters")
    return value


def _hyperparameters_from_argv(by_name: Mapping[str, Param], argv: Sequence[str]) -> dict[str, Any]:
    # Script mode passes every hyperparameter as `--name value`, and the value is taken as
    # it is even when it starts with "-" (a column named "-x"). `--name=value` and
    # `--na-me` for `na_me` work too. Launchers may add flags of their own (`--local-rank`),
    # which are skipped; other words that are not flags are ignored.
    flags = {alias: name for name in by_name for alias in (name, name.replace("_", "-"))}
    found: dict[str, Any] = {}
    args = iter(argv)
    for arg in args:
        if not arg.startswith("--"):
            continue
        flag, has_value, value = arg[2:].partition("=")
        name = flags.get(flag)
        if name is None:
            if _launcher_flag(arg):
                continue
            raise UserError(
                f"unknown command-line option {arg}; known: {', '.join(sorted(by_name))}"
            )
        if has_value:
            found[name] = value
        elif (following := next(args, None)) is not None:
            found[name] = following
        else:
            raise UserError(f"command line: option {arg} needs a value")
    return found


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
