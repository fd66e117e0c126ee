"""The command grammar shared by `/train …` in Slack and the `trainbot …` CLI.

``parse("start image-classification lr=0.01 --pool gpu-1")`` returns a typed command.
Every malformed input raises :class:`InvalidInput` with the problem and the right usage —
nothing else (property-tested with hypothesis).
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field

from bot.domain.errors import InvalidInput

__all__ = [
    "COMMANDS",
    "USAGE",
    "Command",
    "parse",
    "parse_duration",
    "unescape_slack",
]

USAGE: dict[str, str] = {
    "help": "help [COMMAND]",
    "algorithms": "algorithms [ALGORITHM]",
    "pools": "pools",
    "start": "start ALGORITHM [key=value …] [--pool POOL] [--data CHANNEL=URI …] [--name JOB] "
    "[--spot] [--max-runtime 2h]  ·  start --preset NAME [key=value …] [--pool POOL]",
    "rerun": "rerun JOB [vN] [key=value …] [--pool POOL]",
    "stop": "stop JOB [vN]",
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
    "approve": "approve REQUEST_ID",
    "reject": "reject REQUEST_ID [--reason TEXT]",
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


@dataclass(frozen=True)
class Command:
    """A parsed command. ``name`` is the verb; the rest is what that verb takes."""

    name: str
    sub: str | None = None
    job: str | None = None
    version: int | None = None
    other_version: int | None = None
    algorithm: str | None = None
    preset: str | None = None
    params: dict[str, str] = field(default_factory=dict)
    pool: str | None = None
    data: dict[str, str] = field(default_factory=dict)
    job_name: str | None = None
    spot: bool | None = None
    max_runtime_s: int | None = None
    wait: bool = False
    description: str | None = None
    reason: str | None = None
    request_id: str | None = None
    topic: str | None = None


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
        return Command(name="help")
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


def _help(w: _Words) -> Command:
    pos, _ = w.split({})
    if len(pos) > 1:
        raise w.error("`help` takes at most one command name.")
    topic = pos[0].lower() if pos else None
    if topic is not None and topic not in USAGE:
        raise w.error(f"There's no command `{_clip(topic)}`.")
    return Command(name="help", topic=topic)


def _algorithms(w: _Words) -> Command:
    pos, _ = w.split({})
    if len(pos) > 1:
        raise w.error("`algorithms` takes at most one algorithm id.")
    return Command(name="algorithms", algorithm=pos[0] if pos else None)


def _pools(w: _Words) -> Command:
    pos, _ = w.split({})
    if pos:
        raise w.error("`pools` takes no arguments.")
    return Command(name="pools")


_LAUNCH_FLAGS = {"pool": True, "data": True, "spot": False, "max-runtime": True}


def _launch_options(w: _Words, options: dict[str, list[str]]) -> dict[str, object]:
    runtime = w.one(options, "max-runtime")
    data = w.key_values(options.get("data", []), what="data channel")
    for channel, uri in data.items():
        if not uri:
            raise w.error(f"`--data {channel}=` needs a URI.")
    return {
        "pool": w.one(options, "pool"),
        "data": data,
        "spot": True if "spot" in options else None,
        "max_runtime_s": parse_max_runtime(runtime) if runtime is not None else None,
    }


def _start(w: _Words) -> Command:
    pos, opts = w.split({**_LAUNCH_FLAGS, "name": True, "preset": True, "wait": False})
    preset = w.one(opts, "preset")
    algorithm = None
    if preset is None:
        if not pos:
            # `/train start` alone: Slack opens the start form; the CLI explains usage.
            return Command(name="start", wait="wait" in opts)
        algorithm = pos.pop(0)
        if "=" in algorithm or algorithm.startswith("-"):
            raise w.error(
                f"`{_clip(algorithm)}` is not an algorithm id; the algorithm comes first."
            )
    return Command(
        name="start",
        algorithm=algorithm,
        preset=preset,
        params=w.key_values(pos),
        job_name=w.one(opts, "name"),
        wait="wait" in opts,
        **_launch_options(w, opts),  # type: ignore[arg-type]
    )


def _rerun(w: _Words) -> Command:
    pos, opts = w.split({**_LAUNCH_FLAGS, "wait": False})
    job, version = w.job_and_version([p for p in pos if "=" not in p])
    params = w.key_values([p for p in pos if "=" in p])
    return Command(
        name="rerun", job=job, version=version, params=params, wait="wait" in opts,
        **_launch_options(w, opts),  # type: ignore[arg-type]
    )


def _job_version_command(name: str, *, flags: dict[str, bool] | None = None):
    def parse_it(w: _Words) -> Command:
        pos, opts = w.split(flags or {})
        job, version = w.job_and_version(pos)
        return Command(name=name, job=job, version=version, wait="wait" in opts)

    return parse_it


def _status(w: _Words) -> Command:
    pos, _ = w.split({})
    if len(pos) > 1:
        raise w.error("`status` takes at most a job name.")
    if pos:
        job, version = w.job_and_version(pos)
        return Command(name="status", job=job, version=version)
    return Command(name="status")


def _versions(w: _Words) -> Command:
    pos, _ = w.split({})
    if len(pos) != 1:
        raise w.error("`versions` takes exactly one job name.")
    job, _v = w.job_and_version(pos)
    return Command(name="versions", job=job)


def _diff(w: _Words) -> Command:
    pos, _ = w.split({})
    if len(pos) != 3:
        raise w.error("`diff` needs a job and two versions.")
    return Command(name="diff", job=pos[0], version=w.version(pos[1]),
                   other_version=w.version(pos[2]))


def _preset(w: _Words) -> Command:
    if not w.words:
        raise w.error("`preset` needs a subcommand: save, list, show or delete.")
    sub = w.words[0].lower()
    w.words = w.words[1:]
    if sub == "list":
        pos, _ = w.split({})
        if pos:
            raise w.error("`preset list` takes no arguments.")
        return Command(name="preset", sub="list")
    if sub in ("show", "delete"):
        pos, _ = w.split({})
        if len(pos) != 1:
            raise w.error(f"`preset {sub}` takes exactly one preset name.")
        return Command(name="preset", sub=sub, preset=pos[0])
    if sub != "save":
        raise w.error(f"`{_clip(sub)}` is not a preset subcommand (save, list, show, delete).")
    pos, opts = w.split({**_LAUNCH_FLAGS, "from": True, "description": True})
    if not pos:
        raise w.error("`preset save` needs a name.")
    name = pos.pop(0)
    description = w.one(opts, "description")
    source = w.one(opts, "from")
    if source is not None:
        job = source
        version = None
        if pos and _VERSION.match(pos[0]):
            version = w.version(pos.pop(0))
        params = w.key_values(pos)
        return Command(name="preset", sub="save", preset=name, job=job, version=version,
                       params=params, description=description,
                       **_launch_options(w, opts))  # type: ignore[arg-type]
    if not pos:
        raise w.error("`preset save NAME` needs `--from JOB [vN]` or an algorithm.")
    algorithm = pos.pop(0)
    if "=" in algorithm:
        raise w.error(f"`{_clip(algorithm)}` is not an algorithm id; the algorithm comes first.")
    return Command(name="preset", sub="save", preset=name, algorithm=algorithm,
                   params=w.key_values(pos), description=description,
                   **_launch_options(w, opts))  # type: ignore[arg-type]


def _approve(w: _Words) -> Command:
    pos, _ = w.split({})
    if len(pos) != 1:
        raise w.error("`approve` takes exactly one request id.")
    return Command(name="approve", request_id=pos[0])


def _reject(w: _Words) -> Command:
    pos, opts = w.split({"reason": True})
    if len(pos) != 1:
        raise w.error("`reject` takes exactly one request id.")
    return Command(name="reject", request_id=pos[0], reason=w.one(opts, "reason"))


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


_PARSERS = {
    "help": _help,
    "algorithms": _algorithms,
    "pools": _pools,
    "start": _start,
    "rerun": _rerun,
    "stop": _job_version_command("stop", flags={"wait": False}),
    "status": _status,
    "versions": _versions,
    "show": _job_version_command("show"),
    "diff": _diff,
    "lineage": _job_version_command("lineage"),
    "eval": _job_version_command("eval"),
    "logs": _job_version_command("logs"),
    "tb": _job_version_command("tb"),
    "preset": _preset,
    "approve": _approve,
    "reject": _reject,
}
