"""Algorithm manifests (presets and teams' own) and hyperparameter validation (no I/O)."""

from __future__ import annotations

import difflib
import json
import math
import re
import unicodedata
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from bot.domain.errors import InvalidInput

__all__ = [
    "Algorithm",
    "AlgorithmSource",
    "ChannelSpec",
    "HPValue",
    "HyperParameter",
    "HyperParameterType",
    "MetricDefinition",
    "Objective",
    "OpenHyperParameter",
]

HPValue = int | float | bool | str

# Used with fullmatch: `$` alone also matches before a trailing newline ("lr\n").
_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_HP_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")
_TRUE = {"true", "1", "yes", "on", "y", "t"}
_FALSE = {"false", "0", "no", "off", "n", "f"}
MAX_STR_VALUE = 256
# An open schema's names per job. SageMaker's HyperParameters map holds at most 100 entries
# and script mode adds up to 7 `sagemaker_*` ones of its own (adapters/sagemaker/request.py).
# https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_CreateTrainingJob.html
MAX_OPEN_HYPERPARAMETERS = 90
# Names SageMaker sets itself (`sagemaker_program`, `_tuning_objective_metric`); a user's value
# under one of them would be dropped or would override the platform's.
_RESERVED_HP = re.compile(r"^(?:sagemaker_|_)", re.IGNORECASE)
# Unicode control characters (Cc: tab, newline, NUL, DEL, C1) and lone surrogates (Cs): a NUL
# can't go into a process's argv, and the others garble logs and chat messages.
_BAD_CATEGORIES = frozenset({"Cc", "Cs"})


class HyperParameterType(StrEnum):
    INT = "int"
    FLOAT = "float"
    BOOL = "bool"
    STR = "str"
    CHOICE = "choice"


class HyperParameter(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    type: HyperParameterType
    default: HPValue
    min: float | None = None
    max: float | None = None
    choices: list[str] | None = None
    help: str = ""

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _HP_NAME.fullmatch(v):
            raise ValueError(f"invalid hyperparameter name {v!r}")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> HyperParameter:
        if self.type is HyperParameterType.CHOICE and not self.choices:
            raise ValueError(f"{self.name}: a choice parameter needs choices")
        # The default must itself be valid: a manifest can't ship a broken default.
        self.coerce(self.default)
        return self

    def describe_range(self) -> str:
        if self.type is HyperParameterType.CHOICE:
            return "one of " + ", ".join(self.choices or [])
        if self.type is HyperParameterType.BOOL:
            return "true or false"
        if self.type in (HyperParameterType.INT, HyperParameterType.FLOAT):
            lo = "-inf" if self.min is None else _fmt(self.min)
            hi = "inf" if self.max is None else _fmt(self.max)
            kind = "an integer" if self.type is HyperParameterType.INT else "a number"
            return f"{kind} in [{lo}, {hi}]"
        return f"text up to {MAX_STR_VALUE} characters"

    def coerce(self, raw: Any) -> HPValue:
        """Turn a user-supplied value (often a string) into this parameter's type.

        Raises :class:`InvalidInput` naming the parameter and the accepted range.
        """
        problem = f"`{self.name}` must be {self.describe_range()}, got {_show(raw)}"
        t = self.type
        if t is HyperParameterType.BOOL:
            if isinstance(raw, bool):
                return raw
            s = str(raw).strip().lower()
            if s in _TRUE:
                return True
            if s in _FALSE:
                return False
            raise InvalidInput(problem)
        if t in (HyperParameterType.INT, HyperParameterType.FLOAT):
            if isinstance(raw, bool):
                raise InvalidInput(problem)
            try:
                if t is HyperParameterType.INT:
                    if isinstance(raw, float):
                        if not raw.is_integer():
                            raise ValueError
                        value: int | float = int(raw)
                    else:
                        value = int(str(raw).strip(), 10)
                else:
                    value = float(str(raw).strip())
            except (ValueError, OverflowError):
                raise InvalidInput(problem) from None
            if isinstance(value, float) and not math.isfinite(value):
                raise InvalidInput(problem)
            if (self.min is not None and value < self.min) or (
                self.max is not None and value > self.max
            ):
                raise InvalidInput(problem)
            return value
        s = str(raw)
        if t is HyperParameterType.CHOICE:
            if s not in (self.choices or []):
                raise InvalidInput(problem)
            return s
        if len(s) > MAX_STR_VALUE:
            raise InvalidInput(problem)
        return s


class OpenHyperParameter(HyperParameter):
    """Any name of an open schema (``hyperparameters: any``): text, passed on as it is.

    Stricter than a typed ``str`` value: no control characters, since nothing in the
    manifest says what the script expects.
    """

    type: HyperParameterType = HyperParameterType.STR
    default: HPValue = ""
    help: str = "free-form text; the algorithm's script reads and checks it"

    def describe_range(self) -> str:
        return f"text up to {MAX_STR_VALUE} characters without control characters"

    def coerce(self, raw: Any) -> str:
        s = str(super().coerce(raw))
        if any(unicodedata.category(ch) in _BAD_CATEGORIES for ch in s):
            raise InvalidInput(
                f"`{self.name}` must be {self.describe_range()}, got {_show(raw)}")
        return s


class ChannelSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    required: bool = False
    default: str | None = None
    content_types: list[str] = Field(default_factory=list)
    description: str = ""


class MetricDefinition(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, max_length=255)
    regex: str = Field(min_length=1, max_length=500)

    @field_validator("regex")
    @classmethod
    def _one_group(cls, v: str) -> str:
        try:
            compiled = re.compile(v)
        except re.error as exc:
            raise ValueError(f"invalid metric regex {v!r}: {exc}") from exc
        if compiled.groups != 1:
            raise ValueError(f"metric regex {v!r} must have exactly one capture group")
        return v


class Objective(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    metric: str
    goal: Literal["maximize", "minimize"] = "maximize"

    def better(self, a: float, b: float) -> bool:
        """True when ``a`` is strictly better than ``b``."""
        return a > b if self.goal == "maximize" else a < b


class AlgorithmSource(BaseModel):
    """Where a team's own (registered) algorithm comes from; None on a preset.

    Registration is content-addressed: ``digest`` (sha256 of the source dir, or of the image
    reference for an image algorithm) identifies this algorithm version for good, and a
    version records it (``JobSpec.algorithm_digest``) so a rerun runs exactly the same code.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["script", "image"]
    digest: str = Field(pattern=r"^[0-9a-f]{64}$")
    # script: the stored source — a local folder (file:///…, the embedded default) or the
    # uploaded sourcedir.tar.gz (s3://…); image: None.
    location: str | None = None
    # image: the container implementing SageMaker's own contract; script on SageMaker: the
    # framework images by kind ("cpu", "gpu") resolved at registration.
    image: str | None = None
    images: dict[str, str] = Field(default_factory=dict)
    owner: str
    registered_at: datetime
    hidden: bool = False


class Algorithm(BaseModel):
    """An algorithm: a preset (``source`` None) or a team's own, registered one."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    title: str
    version: str = Field(pattern=r"^\d+\.\d+\.\d+$")
    framework: str
    framework_version: str
    py_version: str = "py311"
    description: str = ""
    entry_point: str
    # Typed schema; empty when ``open_hyperparameters`` (the manifest said
    # ``hyperparameters: any``), so views that list it show nothing rather than break.
    hyperparameters: list[HyperParameter] = Field(default_factory=list)
    open_hyperparameters: bool = False
    channels: list[ChannelSpec] = Field(default_factory=list)
    # The objective must be one of them, so there is always at least one.
    metrics: list[MetricDefinition] = Field(min_length=1, max_length=40)
    progress_regex: str | None = None
    objective: Objective
    quality_target: float | None = None
    supported_pools: list[str] = Field(default_factory=lambda: ["*"])
    supports_checkpoints: bool = False
    supports_spot: bool = False
    supports_distributed: bool = False
    gpu: Literal["optional", "required", "unused"] = "optional"
    source: AlgorithmSource | None = None

    @property
    def custom(self) -> bool:
        return self.source is not None

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not _ID.fullmatch(v):
            raise ValueError(f"algorithm id {v!r} must be lowercase letters, digits and '-'")
        return v

    @model_validator(mode="before")
    @classmethod
    def _open_schema(cls, data: Any) -> Any:
        """``hyperparameters: any`` in a manifest means an open schema."""
        if not isinstance(data, dict):
            return data
        declared = data.get("hyperparameters")
        if isinstance(declared, str):
            if declared != "any":
                raise ValueError(
                    f"hyperparameters must be a list of typed parameters or `any`, "
                    f"not {_show(declared)}")
            if data.get("open_hyperparameters", True) is not True:
                raise ValueError("`hyperparameters: any` contradicts open_hyperparameters: false")
            return {**data, "hyperparameters": [], "open_hyperparameters": True}
        return data

    @field_validator("progress_regex")
    @classmethod
    def _progress(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                groups = re.compile(v).groupindex
            except re.error as exc:  # not a ValueError: pydantic would let it escape
                raise ValueError(f"invalid progress_regex {v!r}: {exc}") from exc
            if "current" not in groups:
                raise ValueError("progress_regex needs a named group 'current'")
        return v

    @model_validator(mode="after")
    def _objective_is_a_metric(self) -> Algorithm:
        names = [m.name for m in self.metrics]
        if self.objective.metric not in names:
            raise ValueError(f"objective metric {self.objective.metric!r} is not among {names}")
        if len(set(names)) != len(names):
            raise ValueError("duplicate metric names")
        channels = [c.name for c in self.channels]
        if len(set(channels)) != len(channels):
            raise ValueError("duplicate channel names")
        hp_names = [h.name for h in self.hyperparameters]
        if len(set(hp_names)) != len(hp_names):
            raise ValueError("duplicate hyperparameter names")
        reserved = [n for n in hp_names if _RESERVED_HP.match(n)]
        if reserved:
            raise ValueError(f"hyperparameter names {reserved} are reserved: SageMaker sets "
                             "`sagemaker_*` and `_*` itself")
        if len(hp_names) > MAX_OPEN_HYPERPARAMETERS:
            raise ValueError(f"at most {MAX_OPEN_HYPERPARAMETERS} hyperparameters (SageMaker "
                             "takes 100 per job, and script mode adds its own)")
        if self.open_hyperparameters and hp_names:
            raise ValueError("an open schema (`hyperparameters: any`) lists no hyperparameters")
        return self

    @property
    def ref(self) -> str:
        return f"{self.id}@{self.version}"

    def hyperparameter(self, name: str) -> HyperParameter:
        """The schema entry for ``name``; any valid name of an open schema.

        Raises :class:`InvalidInput` for a name the schema doesn't have (with a guess at the
        one meant), or, open, for a malformed or SageMaker-reserved name.
        """
        if self.open_hyperparameters:
            return self._open_hyperparameter(name)
        for hp in self.hyperparameters:
            if hp.name == name:
                return hp
        names = [h.name for h in self.hyperparameters]
        close = difflib.get_close_matches(name, names, n=1)
        guess = f" (did you mean `{close[0]}`?)" if close else ""
        raise InvalidInput(
            f"`{name[:40]}` is not a parameter of {self.id}{guess}; "
            f"its parameters are: {', '.join(names) or 'none'}",
            hint=f"See `/train algorithms {self.id}`.",
        )

    def _open_hyperparameter(self, name: str) -> OpenHyperParameter:
        hint = f"{self.id} takes any `name=value`; its script decides what they mean."
        if not _HP_NAME.fullmatch(name):
            raise InvalidInput(
                f"`{name[:40]}` is not a parameter name: up to 64 letters, digits, `_`, `.` "
                "or `-`, starting with a letter", hint=hint)
        if _RESERVED_HP.match(name):
            raise InvalidInput(
                f"`{name[:40]}` is reserved: SageMaker sets `sagemaker_*` and `_*` itself",
                hint=hint)
        return OpenHyperParameter(name=name)

    def defaults(self) -> dict[str, HPValue]:
        """The typed schema's defaults; none for an open one (the script has its own)."""
        return {hp.name: hp.default for hp in self.hyperparameters}

    def validate_hyperparameters(
        self, values: dict[str, Any], *, fill_defaults: bool = True
    ) -> dict[str, HPValue]:
        """Validate user values against the schema; every problem is reported at once."""
        errors: list[str] = []
        out: dict[str, HPValue] = self.defaults() if fill_defaults else {}
        if self.open_hyperparameters and len(values) > MAX_OPEN_HYPERPARAMETERS:
            raise InvalidInput(
                f"{self.id} takes at most {MAX_OPEN_HYPERPARAMETERS} parameters, "
                f"got {len(values)}",
                hint="Put the rest in a config file in a data channel.")
        for key, raw in values.items():
            try:
                out[key] = self.hyperparameter(key).coerce(raw)
            except InvalidInput as exc:
                errors.append(exc.message)
        if errors:
            raise InvalidInput(
                "Invalid parameters for " + self.id + ": " + "; ".join(errors),
                hint=f"See the schema with `/train algorithms {self.id}`.",
            )
        return out

    def supports_pool(self, pool_id: str) -> bool:
        return "*" in self.supported_pools or pool_id in self.supported_pools

    def channel(self, name: str) -> ChannelSpec | None:
        return next((c for c in self.channels if c.name == name), None)


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(x)


def _show(raw: Any) -> str:
    s = raw if isinstance(raw, str) else json.dumps(raw, default=str)
    return repr(s[:40] + "…") if len(s) > 40 else repr(s)
