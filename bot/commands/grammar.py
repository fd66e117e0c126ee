"""The words of `/train …` (and `trainbot …`) → a command of :mod:`bot.commands.verbs`.

``parse("start image-classification lr=0.01 --pool gpu-1")`` returns a ``Start``. Every
malformed input raises :class:`InvalidInput` with the problem and the right usage — nothing
else (property-tested with hypothesis).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from typing import TypedDict

from bot.commands.verbs import (
    Algorithms,
    Approve,
    BudgetList,
    BudgetRemove,
    BudgetSet,
    Command,
    Cost,
    Diff,
    Eval,
    Help,
    Lineage,
    Logs,
    ModelApprove,
    ModelRegister,
    ModelReject,
    Models,
    Pools,
    PresetDelete,
    PresetList,
    PresetSave,
    PresetShow,
    Reject,
    Rerun,
    Show,
    Start,
    StartForm,
    StatusQuery,
    Stop,
    Tb,
    Versions,
)
from bot.commands.verbs import Sweep as SweepCommand
from bot.domain.errors import InvalidInput

__all__ = ["COMMANDS", "USAGE", "parse", "parse_duration", "parse_max_runtime", "unescape_slack"]

USAGE: dict[str, str] = {
    "help": "help [COMMAND]",
    "algorithms": "algorithms [ALGORITHM]",
    "pools": "pools",
    "start": "start ALGORITHM [key=value …] [--pool POOL] [--data CHANNEL=URI …] [--name JOB] "
    "[--spot] [--max-runtime 2h]  ·  start --preset NAME [key=value …] [--pool POOL]",
    "rerun": "rerun JOB [vN] [key=value …] [--pool POOL]",
    "sweep": "sweep (ALGORITHM | --preset NAME | --from JOB [vN]) name=lo..hi[:log] "
    "name=a|b|c [key=value …] [--trials N] [--parallel P] [--objective METRIC] "
    "[--strategy bayesian|random|hyperband] [--pool POOL] [--name SWEEP]",
    "stop": "stop JOB [vN]  (a sweep's name alone stops the whole sweep)",
    "status": "status [JOB]",
    "versions": "versions JOB",
    "show": "show JOB [vN]",
    "diff": "diff JOB vA vB",
    "lineage": "lineage JOB [vN]",
    "eval": "eval JOB [vN]",
    "logs": "logs JOB [vN]",
    "tb": "tb JOB [vN]",
    "preset": "preset save NAME (--from JOB [vN] | ALGORITHM [key=value …] [--pool POOL] "
    "[--data CHANNEL=URI …]) [--description TEXT]  ·  preset list  ·  preset show NAME  ·  "
    "preset delete NAME",
    "approve": "approve REQUEST_ID [--wait]",
    "reject": "reject REQUEST_ID [--reason TEXT]",
    "model": "model register JOB [vN] [--group NAME]  ·  model approve GROUP vN [--note TEXT]"
    "  ·  model reject GROUP vN [--reason TEXT]",
    "models": "models [GROUP]",
    "budget": "budget  ·  budget set (here | #CHANNEL | @USER | me) USD "
    "[--policy approve|refuse]  ·  budget remove (here | #CHANNEL | @USER | me)",
    "cost": "cost [--month 2026-11 | --since 7d] [--by user|channel|pool|algorithm]",
}
COMMANDS = tuple(USAGE)

_SMART_QUOTES = str.maketrans({"“": '"', "”": '"', "„": '"', "‘": "'", "’": "'", "\u00a0": " "})
# macOS, iOS and Slack itself autocorrect a typed "--" into an em dash (or an en dash), so
# "—pool" at the start of a word means "--pool". Only in front of an option name: a dash
# elsewhere (a value, a description) is the user's own.
_DASHED_OPTION = re.compile(r"^[—–](?=[A-Za-z])")
_VERSION = re.compile(r"^[vV]?(\d{1,6})$")
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")
_DURATION = re.compile(r"^(\d{1,7})([smhd]?)$")
MAX_TEXT = 4000


def unescape_slack(text: str) -> str:
    """Slack's own escaping undone: slash-command text arrives with ``&``, ``<`` and ``>`` as
    ``&amp;``, ``&lt;`` and ``&gt;`` (https://api.slack.com/reference/surfaces/formatting#escaping).
    ``&amp;`` goes last, so ``&amp;lt;`` — a typed ``&lt;`` — stays ``&lt;``."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def parse(text: str, *, from_slack: bool = False) -> Command:
    """Parse the words after ``/train`` (or ``trainbot``).

    ``from_slack``: ``text`` is a slash command's, escaped by Slack (see
    :func:`unescape_slack`); the CLI's text is taken as typed.
    """
    if from_slack:
        text = unescape_slack(text)
    if len(text) > MAX_TEXT:
        raise InvalidInput(f"That command is too long ({len(text)} characters; max {MAX_TEXT}).")
    try:
        words = shlex.split(text.translate(_SMART_QUOTES))
    except ValueError as exc:
        raise InvalidInput(
            f"Couldn't read that command: {exc} (check your quotes).",
            hint="Try `/train help`.",
        ) from None
    if not words:
        return Help()
    verb, rest = words[0].lower(), words[1:]
    parser = _PARSERS.get(verb)
    if parser is None:
        raise InvalidInput(
            f"`{_clip(words[0])}` is not a trainbot command.",
            hint="Commands: " + ", ".join(COMMANDS) + ". Try `/train help`.",
        )
    return parser(_Words(verb, rest))


# A run's ceiling: at least a minute, at most SageMaker's MaxRuntimeInSeconds limit (28 days).
MIN_RUNTIME_S = 60
MAX_RUNTIME_S = 28 * 86400


def parse_duration(raw: str) -> int:
    """``90`` (seconds), ``45m``, ``2h``, ``1d`` → seconds."""
    m = _DURATION.match(raw.strip().lower())
    if not m:
        raise InvalidInput(f"`{_clip(raw)}` is not a duration.", hint="Use e.g. 90s, 45m, 2h, 1d.")
    n, unit = int(m.group(1)), m.group(2) or "s"
    return n * {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit]


def parse_max_runtime(raw: str) -> int:
    """``--max-runtime``: a duration from 1 minute to 28 days (SageMaker's ceiling)."""
    seconds = parse_duration(raw)
    if not MIN_RUNTIME_S <= seconds <= MAX_RUNTIME_S:
        raise InvalidInput(f"`--max-runtime {_clip(raw)}` is out of range.",
                           hint="Use a duration from 1m to 28d, e.g. 30m, 4h or 2d.")
    return seconds


class _Words:
    """A cursor over the words of one command, with errors that carry the usage."""

    def __init__(self, verb: str, words: list[str]) -> None:
        self.verb = verb
        self.words = words
        self.usage_key = verb

    def error(self, problem: str) -> InvalidInput:
        return InvalidInput(problem, hint=f"Usage: `/train {USAGE[self.usage_key]}`")

    def split(self, flags: dict[str, bool]) -> tuple[list[str], dict[str, list[str]]]:
        """Separate positionals from ``--flags``; ``flags`` maps name → takes a value."""
        positional: list[str] = []
        options: dict[str, list[str]] = {}
        it = iter(self.words)
        for word in it:
            word = _option_dashes(word)
            if word.startswith("--") and len(word) > 2:
                name, eq, inline = word[2:].partition("=")
                name = name.lower()
                if name not in flags:
                    known = ", ".join(f"--{f}" for f in flags) or "none"
                    raise self.error(f"`--{_clip(name)}` is not an option here (options: {known}).")
                if flags[name]:
                    value = inline if eq else next(it, None)
                    if value is None or (not eq and _is_option(value, flags)):
                        raise self.error(f"`--{name}` needs a value.")
                    options.setdefault(name, []).append(value)
                else:
                    if eq:
                        raise self.error(f"`--{name}` takes no value.")
                    options.setdefault(name, []).append("")
            else:
                positional.append(word)
        return positional, options

    def one(self, options: dict[str, list[str]], name: str) -> str | None:
        values = options.get(name)
        if not values:
            return None
        if len(values) > 1:
            raise self.error(f"`--{name}` was given more than once.")
        return values[0]

    def key_values(self, words: list[str], *, what: str = "parameter") -> dict[str, str]:
        out: dict[str, str] = {}
        for word in words:
            key, eq, value = word.partition("=")
            if not eq:
                raise self.error(f"`{_clip(word)}` should be key=value.")
            if not _KEY.match(key):
                raise self.error(f"`{_clip(key)}` is not a valid {what} name.")
            if key in out:
                raise self.error(f"`{key}` was given twice.")
            out[key] = value
        return out

    def version(self, word: str) -> int:
        m = _VERSION.match(word)
        if not m or int(m.group(1)) < 1:
            raise self.error(f"`{_clip(word)}` is not a version (write v1, v2, …).")
        return int(m.group(1))

    def job_and_version(
        self, positional: list[str], *, max_extra: int = 0
    ) -> tuple[str, int | None]:
        if not positional:
            raise self.error("Which job? Give its name.")
        job = positional[0]
        if job.startswith("-") or "=" in job:
            raise self.error(f"`{_clip(job)}` is not a job name.")
        version = None
        rest = positional[1:]
        if rest and _VERSION.match(rest[0]):
            version = self.version(rest[0])
            rest = rest[1:]
        if len(rest) > max_extra:
            raise self.error(f"Unexpected `{_clip(rest[0])}`.")
        return job, version


def _help(w: _Words) -> Help:
    pos, _ = w.split({})
    if len(pos) > 1:
        raise w.error("`help` takes at most one command name.")
    topic = pos[0].lower() if pos else None
    if topic is not None and topic not in USAGE:
        raise w.error(f"There's no command `{_clip(topic)}`.")
    return Help(topic=topic)


def _algorithms(w: _Words) -> Algorithms:
    pos, _ = w.split({})
    if len(pos) > 1:
        raise w.error("`algorithms` takes at most one algorithm id.")
    return Algorithms(algorithm=pos[0] if pos else None)


def _pools(w: _Words) -> Pools:
    pos, _ = w.split({})
    if pos:
        raise w.error("`pools` takes no arguments.")
    return Pools()


_LAUNCH_FLAGS = {"pool": True, "data": True, "spot": False, "max-runtime": True}


class _LaunchOptions(TypedDict):
    pool: str | None
    data: dict[str, str]
    spot: bool | None
    max_runtime_s: int | None


def _launch_options(w: _Words, options: dict[str, list[str]]) -> _LaunchOptions:
    runtime = w.one(options, "max-runtime")
    data = w.key_values(options.get("data", []), what="data channel")
    for channel, uri in data.items():
        if not uri:
            raise w.error(f"`--data {channel}=` needs a URI.")
    return _LaunchOptions(
        pool=w.one(options, "pool"),
        data=data,
        spot=True if "spot" in options else None,
        max_runtime_s=parse_max_runtime(runtime) if runtime is not None else None,
    )


def _start(w: _Words) -> Start | StartForm:
    pos, opts = w.split({**_LAUNCH_FLAGS, "name": True, "preset": True, "wait": False})
    preset = w.one(opts, "preset")
    algorithm = None
    if preset is None:
        if not pos:
            return StartForm()
        algorithm = pos.pop(0)
        if "=" in algorithm or algorithm.startswith("-"):
            raise w.error(
                f"`{_clip(algorithm)}` is not an algorithm id; the algorithm comes first."
            )
    return Start(algorithm=algorithm, preset=preset, params=w.key_values(pos),
                 job_name=w.one(opts, "name"), wait="wait" in opts,
                 **_launch_options(w, opts))


_SWEEP_FLAGS = {**_LAUNCH_FLAGS, "preset": True, "from": True, "trials": True,
                "parallel": True, "objective": True, "strategy": True, "name": True,
                "wait": False}


def _sweep(w: _Words) -> SweepCommand:
    pos, opts = w.split(_SWEEP_FLAGS)
    preset, from_job = w.one(opts, "preset"), w.one(opts, "from")
    bases = [x for x in (preset, from_job) if x is not None]
    algorithm, from_version = None, None
    words = [p for p in pos if "=" not in p]
    if len(bases) > 1:
        raise w.error("Sweep one thing: an algorithm, `--preset NAME` or `--from JOB`.")
    if from_job is not None and words and _VERSION.match(words[0]):
        from_version = w.version(words.pop(0))
    if not bases:
        if not words:
            raise w.error("What to sweep? Give an algorithm, `--preset NAME` or `--from JOB`.")
        algorithm = words.pop(0)
        if algorithm.startswith("-"):
            raise w.error(f"`{_clip(algorithm)}` is not an algorithm id.")
    if words:
        raise w.error(f"`{_clip(words[0])}` should be name=lo..hi, name=a|b|c or key=value.")
    return SweepCommand(
        algorithm=algorithm, preset=preset, from_job=from_job, from_version=from_version,
        assignments=w.key_values([p for p in pos if "=" in p]),
        trials=_count(w, opts, "trials", 10), parallel=_count(w, opts, "parallel", 1),
        objective=w.one(opts, "objective"),
        strategy=(w.one(opts, "strategy") or "bayesian").lower(), name=w.one(opts, "name"),
        wait="wait" in opts, **_launch_options(w, opts))


def _count(w: _Words, opts: dict[str, list[str]], name: str, default: int) -> int:
    raw = w.one(opts, name)
    if raw is None:
        return default
    if not (raw.strip().isascii() and raw.strip().isdigit()) or int(raw) < 1:
        raise w.error(f"`--{name} {_clip(raw)}` should be a whole number, 1 or more.")
    return int(raw)


def _rerun(w: _Words) -> Rerun:
    pos, opts = w.split({**_LAUNCH_FLAGS, "wait": False})
    job, version = w.job_and_version([p for p in pos if "=" not in p])
    params = w.key_values([p for p in pos if "=" in p])
    return Rerun(job=job, version=version, params=params, wait="wait" in opts,
                 **_launch_options(w, opts))


def _stop(w: _Words) -> Stop:
    pos, opts = w.split({"wait": False})
    job, version = w.job_and_version(pos)
    return Stop(job=job, version=version, wait="wait" in opts)


def _of_version(cls: Callable[[str, int | None], Command]) -> Callable[[_Words], Command]:
    """The parser of a verb that takes ``JOB [vN]`` and nothing else."""

    def parse_it(w: _Words) -> Command:
        pos, _ = w.split({})
        return cls(*w.job_and_version(pos))

    return parse_it


def _status(w: _Words) -> StatusQuery:
    pos, _ = w.split({})
    if len(pos) > 1:
        raise w.error("`status` takes at most a job name.")
    return StatusQuery(job=w.job_and_version(pos)[0] if pos else None)


def _versions(w: _Words) -> Versions:
    pos, _ = w.split({})
    if len(pos) != 1:
        raise w.error("`versions` takes exactly one job name.")
    return Versions(job=w.job_and_version(pos)[0])


def _diff(w: _Words) -> Diff:
    pos, _ = w.split({})
    if len(pos) != 3:
        raise w.error("`diff` needs a job and two versions.")
    return Diff(job=pos[0], a=w.version(pos[1]), b=w.version(pos[2]))


def _preset(w: _Words) -> PresetList | PresetShow | PresetDelete | PresetSave:
    if not w.words:
        raise w.error("`preset` needs a subcommand: save, list, show or delete.")
    sub = w.words[0].lower()
    w.words = w.words[1:]
    if sub == "list":
        pos, _ = w.split({})
        if pos:
            raise w.error("`preset list` takes no arguments.")
        return PresetList()
    if sub in ("show", "delete"):
        pos, _ = w.split({})
        if len(pos) != 1:
            raise w.error(f"`preset {sub}` takes exactly one preset name.")
        return PresetShow(name=pos[0]) if sub == "show" else PresetDelete(name=pos[0])
    if sub != "save":
        raise w.error(f"`{_clip(sub)}` is not a preset subcommand (save, list, show, delete).")
    pos, opts = w.split({**_LAUNCH_FLAGS, "from": True, "description": True})
    if not pos:
        raise w.error("`preset save` needs a name.")
    name = pos.pop(0)
    description = w.one(opts, "description")
    source = w.one(opts, "from")
    if source is not None:
        version = w.version(pos.pop(0)) if pos and _VERSION.match(pos[0]) else None
        params = w.key_values(pos)
        launch = _launch_options(w, opts)
        return PresetSave(name=name, description=description, from_job=source,
                          from_version=version, params=params, pool=launch["pool"],
                          data=launch["data"])
    if not pos:
        raise w.error("`preset save NAME` needs `--from JOB [vN]` or an algorithm.")
    algorithm = pos.pop(0)
    if "=" in algorithm:
        raise w.error(f"`{_clip(algorithm)}` is not an algorithm id; the algorithm comes first.")
    params = w.key_values(pos)
    # --spot and --max-runtime are read (and checked) as for start; a preset keeps neither.
    launch = _launch_options(w, opts)
    return PresetSave(name=name, description=description, algorithm=algorithm, params=params,
                      pool=launch["pool"], data=launch["data"])


def _approve(w: _Words) -> Approve:
    pos, opts = w.split({"wait": False})
    if len(pos) != 1:
        raise w.error("`approve` takes exactly one request id.")
    return Approve(request_id=pos[0], wait="wait" in opts)


def _reject(w: _Words) -> Reject:
    pos, opts = w.split({"reason": True})
    if len(pos) != 1:
        raise w.error("`reject` takes exactly one request id.")
    return Reject(request_id=pos[0], reason=w.one(opts, "reason"))


def _model(w: _Words) -> ModelRegister | ModelApprove | ModelReject:
    if not w.words:
        raise w.error("`model` needs a subcommand: register, approve or reject.")
    sub = w.words[0].lower()
    w.words = w.words[1:]
    if sub == "register":
        pos, opts = w.split({"group": True})
        job, version = w.job_and_version(pos)
        return ModelRegister(job=job, version=version, group=w.one(opts, "group"))
    if sub not in ("approve", "reject"):
        raise w.error(f"`{_clip(sub)}` is not a model subcommand (register, approve, reject).")
    flag = "note" if sub == "approve" else "reason"
    pos, opts = w.split({flag: True})
    if len(pos) != 2:
        raise w.error(f"`model {sub}` takes a model group and a version, e.g. `churn v2`.")
    group, number = pos[0], w.version(pos[1])
    if sub == "approve":
        return ModelApprove(group=group, number=number, note=w.one(opts, "note"))
    return ModelReject(group=group, number=number, reason=w.one(opts, "reason"))


# A channel or a user as Slack writes a mention (`<#C0123|general>`, `<@U0123|ana>`), as
# typed (`#C0123`, `@U0123`) or as a bare id.
_TARGET = re.compile(r"^<?(?P<sigil>[#@]?)(?P<id>[CGDUW][A-Z0-9]{2,20})(?:\|[^>]*)?>?$")


def _target(w: _Words, word: str) -> tuple[str, str]:
    """``here`` (the channel the command is typed in) and ``me`` are resolved by the
    dispatcher: Slack sends a typed ``#name`` as text, not as an id."""
    if word.lower() in ("here", "#here"):
        return "channel", "here"
    if word.lower() in ("me", "@me"):
        return "user", "me"
    m = _TARGET.match(word)
    if m is None:
        raise w.error(f"`{_clip(word)}` is neither a channel nor a user: write `here` (this "
                      "channel), `me`, a channel or user id, or mention them.")
    ident = m["id"]
    return ("user" if ident[0] in "UW" else "channel"), ident


def _budget(w: _Words) -> BudgetList | BudgetSet | BudgetRemove:
    if not w.words or w.words[0].lower() == "list":
        if len(w.words) > 1:
            raise w.error("`budget list` takes nothing more.")
        return BudgetList()
    sub = w.words[0].lower()
    w.words = w.words[1:]
    if sub == "remove":
        pos, _ = w.split({})
        if len(pos) != 1:
            raise w.error("`budget remove` takes one #channel or @user.")
        return BudgetRemove(*_target(w, pos[0]))
    if sub != "set":
        raise w.error(f"`{_clip(sub)}` is not a budget subcommand (set, remove, list).")
    pos, opts = w.split({"policy": True})
    if len(pos) != 2:
        raise w.error("`budget set` takes a #channel or @user and an amount in USD.")
    scope, subject = _target(w, pos[0])
    raw = pos[1].lstrip("$").replace(",", "")
    try:
        limit = float(raw)
    except ValueError:
        raise w.error(f"`{_clip(pos[1])}` is not an amount: give USD, e.g. 500.") from None
    if not 0 < limit <= 10_000_000 or limit != limit:
        raise w.error(f"`{_clip(pos[1])}` is not a budget: give USD above 0, e.g. 500.")
    policy = (w.one(opts, "policy") or "approve").lower()
    if policy not in ("approve", "refuse"):
        raise w.error(f"`--policy {_clip(policy)}`: use approve (over budget asks an approver) "
                      "or refuse.")
    return BudgetSet(scope=scope, subject=subject, limit_usd=limit, policy=policy)


def _cost(w: _Words) -> Cost:
    pos, opts = w.split({"month": True, "since": True, "by": True})
    if pos:
        raise w.error(f"Unexpected `{_clip(pos[0])}`.")
    return Cost(month=w.one(opts, "month"), since=w.one(opts, "since"),
                by=(w.one(opts, "by") or "pool").lower())


def _models(w: _Words) -> Models:
    pos, _ = w.split({})
    if len(pos) > 1:
        raise w.error("`models` takes at most a model group name.")
    return Models(group=pos[0] if pos else None)


def _option_dashes(word: str) -> str:
    """``—pool`` / ``–pool`` (an autocorrected ``--pool``) → ``--pool``; other words as is."""
    return _DASHED_OPTION.sub("--", word)


def _is_option(word: str, flags: dict[str, bool]) -> bool:
    """Whether a word in a value's place is an option instead (the value was left out).
    An autocorrected dash counts only before a known option: "—fast" may be a value."""
    if word.startswith("--"):
        return True
    dashed = _option_dashes(word)
    return dashed != word and dashed[2:].partition("=")[0].lower() in flags


def _clip(text: str, n: int = 40) -> str:
    text = text.replace("`", "'")
    return text if len(text) <= n else text[: n - 1] + "…"


_PARSERS: dict[str, Callable[[_Words], Command]] = {
    "help": _help,
    "algorithms": _algorithms,
    "pools": _pools,
    "start": _start,
    "rerun": _rerun,
    "sweep": _sweep,
    "stop": _stop,
    "status": _status,
    "versions": _versions,
    "show": _of_version(Show),
    "diff": _diff,
    "lineage": _of_version(Lineage),
    "eval": _of_version(Eval),
    "logs": _of_version(Logs),
    "tb": _of_version(Tb),
    "preset": _preset,
    "approve": _approve,
    "reject": _reject,
    "model": _model,
    "models": _models,
    "budget": _budget,
    "cost": _cost,
}
