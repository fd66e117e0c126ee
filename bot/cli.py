"""`trainbot`: the same words as `/train`, plus running the bot and admin tasks.

    trainbot help | pools | start image-classification epochs=3 --wait | …   (the grammar)
    trainbot run                 the embedded default: bot + local Slack + terminal client
    trainbot serve [--port N] [--socket]
    trainbot chat                terminal client for a running local bot
    trainbot admin init-store    create the DynamoDB table(s) if missing
    trainbot admin reconcile     one pass of the scheduled reconciler (missed events, expiry)
    trainbot admin stop-tensorboard   stop the local TensorBoard server the CLI left running
    trainbot algorithms publish  package and publish the preset algorithms (AWS)
    trainbot algorithms add PATH | --image URI --manifest FILE   register a team's own
    trainbot algorithms remove ID                                 hide it from new starts
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from bot.domain import InvalidInput, JobVersion, TrainbotError

if TYPE_CHECKING:
    from bot.commands import Command
    from bot.dispatch import Reply
    from bot.domain import Preset
    from bot.services.context import Deps

__all__ = ["main"]

log = logging.getLogger("trainbot")


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    as_json = "--json" in args
    args = [a for a in args if a != "--json"]
    # `--wait` is a global option in the help; the grammar takes it after the command.
    while args[:1] == ["--wait"]:
        args = [*args[1:], "--wait"]
    if args[:1] == ["--version"]:
        print(f"trainbot {_version()}")
        return 0
    log_file = _log_to_file()
    try:
        return _route(args, as_json=as_json)
    except BrokenPipeError:
        # The reader went away (`trainbot --json show X | head`): stop quietly, as `git log |
        # head` does. Python flushes stdout again at exit; point it at devnull so that flush
        # can't fail too (https://docs.python.org/3/library/signal.html#note-on-sigpipe).
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        from bot.error_text import user_text

        # The CLI's user runs it as themselves and can read the log: no "ask your admin".
        print(f"error: {_terminal(user_text(exc, log=log, log_path=log_file))}", file=sys.stderr)
        return 2 if isinstance(exc, TrainbotError) else 70


def _route(args: list[str], *, as_json: bool) -> int:
    from bot.commands import USAGE

    if not args or args[0] in ("-h", "--help") or args[:1] == ["help"]:
        topic = " ".join(a for a in args[1:] if a not in ("-h", "--help")) or None
        return _help(topic, as_json=as_json)
    verb = args[0]
    if verb in ("run", "serve", "chat"):
        from bot.local_run import main as run_main

        return run_main(args)
    if verb == "algorithms" and args[1:2] == ["publish"]:
        from bot.publish import main as publish_main

        return publish_main(args[2:])
    if verb == "algorithms" and args[1:2] in (["add"], ["remove"]):
        return _manage_algorithms(args[1], args[2:], as_json=as_json)
    if verb == "admin":
        return _admin(args[1:])
    if verb not in USAGE:
        raise InvalidInput(f"`{verb[:40]}` is not a trainbot command.",
                           hint=_did_you_mean(verb, _ALL_COMMANDS) + "See `trainbot --help`.")
    if "-h" in args[1:] or "--help" in args[1:]:
        return _help(verb, as_json=as_json)
    return _command(args, as_json=as_json)


def _admin(args: list[str]) -> int:
    if args[:1] == ["init-store"]:
        return _init_store()
    if args[:1] == ["reconcile"]:
        return _reconcile()
    if args[:1] == ["stop-tensorboard"]:
        return _stop_tensorboard()
    if not args or args[0] in ("-h", "--help"):
        print(_usage("admin"), end="")
        return 0
    raise InvalidInput(f"`{args[0][:40]}` is not an admin command.",
                       hint=_did_you_mean(args[0], list(_ADMIN)) + _usage("admin").rstrip())


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("trainbot")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


# What the CLI has beyond the `/train` grammar (bot.commands.USAGE).
_LOCAL = {
    "run": ("run [--port N] [--slack-port N]",
            "the embedded default: bot + local Slack + terminal client"),
    "serve": ("serve [--port N] [--socket]", "only the bot (HTTP, or Socket Mode with --socket)"),
    "chat": ("chat [--bot-url URL] [--slack-url URL] [--user ID]",
             "terminal client for a running local bot"),
}
_ADMIN = {
    "init-store": "create the DynamoDB table(s) if missing",
    "reconcile": "one pass of the scheduled reconciler (missed events, expiry); prints JSON",
    "stop-tensorboard": "stop the local TensorBoard server the CLI left running",
}
_PUBLISH = ("algorithms publish [--dry-run] [--region R] [--bucket B] …",
            "package and publish the preset algorithms (AWS)")
# A team's own algorithms (admins and TRAINBOT_ALGORITHM_PUBLISHERS): (usage, what) pairs,
# the description `--help` gives, its options.
_MANAGE = {
    "algorithms add": (
        (("algorithms add PATH [--cpu-image URI [--gpu-image URI]]",
          "register your own algorithm: a folder (script mode)"),
         ("algorithms add --image URI --manifest FILE",
          "register your own container (SageMaker's training contract)")),
        "Register your own algorithm — a folder with manifest.yml and its training script, or\n"
        "a container image implementing SageMaker's training contract — as a new version of\n"
        "its id (the same content again: unchanged). Admins and algorithm publishers only.",
        ("PATH               a folder: manifest.yml (the presets' format) and its entry_point",
         "--image URI        a container image (bring your own container); nothing is uploaded",
         "--manifest FILE    with --image: the algorithm's manifest.yml",
         "--cpu-image URI    AWS: the training image for CPU pools (default: the framework's",
         "                   AWS Deep Learning Container, found by the sagemaker SDK)",
         "--gpu-image URI    AWS, with --cpu-image: the image for GPU pools")),
    "algorithms remove": (
        (("algorithms remove ID", "hide a registered algorithm from new starts"),),
        "Hide a registered algorithm from new starts; the versions that ran it keep it (details,\n"
        "lineage). Adding it again shows it again. Admins and algorithm publishers only.", ()),
}
_GLOBAL = (
    ("--json", "print data (JSON objects) instead of text"),
    ("--wait", "start, rerun, stop, approve: wait until the run ends (exit 1 unless it completed)"),
    ("-h, --help", "show help (also `trainbot COMMAND --help`)"),
    ("--version", "print the version"),
)
# What a command's `--help` says besides its usage.
_EXTRA_HELP = {
    "budget": "\nMonthly spend limits in USD of a channel or a user (spent + the ceiling of what\n"
              "still runs). Over a limit a launch needs an approver's OK (--policy approve, the\n"
              "default) or is refused (--policy refuse); alerts at 80 % and 100 %.\n"
              "`budget` lists them; set and remove are for admins (TRAINBOT_ADMINS).\n\n",
    "cost": "\nWhat was spent, grouped: a calendar month from the spend ledger (--month, default\n"
            "this one; with the ceiling of what still runs), or the versions that ended in the\n"
            "last --since 7d / 36h / 2w. Actual cost = billable time × the pool's price.\n\n",
}
_ALL_COMMANDS = ["help", *_LOCAL, "admin", "algorithms", "pools", "start", "rerun", "stop",
                 "status", "versions", "show", "diff", "lineage", "eval", "logs", "tb", "preset",
                 "approve", "reject", "model", "models", "sweep", "budget", "cost"]


def _usage(topic: str | None) -> str:
    """Help in `trainbot …` syntax: everything, or one command."""
    from bot.commands import USAGE

    if topic in _LOCAL:
        return f"usage: trainbot {_LOCAL[topic][0]}\n\n{_LOCAL[topic][1]}\n"
    if topic == "admin":
        return "usage: trainbot admin COMMAND\n\n" + "".join(
            f"  trainbot admin {name:<17} {what}\n" for name, what in _ADMIN.items())
    if topic == "algorithms publish":
        return f"usage: trainbot {_PUBLISH[0]}\n\n{_PUBLISH[1]}\n"
    if topic in _MANAGE:
        uses, what, options = _MANAGE[topic]
        return ("usage: " + "\n       ".join(f"trainbot {u}" for u, _ in uses) + f"\n\n{what}\n\n"
                + "".join(f"  {o}\n" for o in options)
                + "  --json             print the algorithm as JSON\n")
    if topic is not None:
        lines = USAGE[topic].split("  ·  ")
        text = "usage: " + "\n       ".join(f"trainbot {u}" for u in lines) + "\n"
        if topic in ("start", "rerun", "stop", "approve"):
            text += "\n  --wait   wait until the run ends (exit 1 if it didn't complete)\n"
        text += _EXTRA_HELP.get(topic, "")
        if topic == "algorithms":
            text += "".join(f"       trainbot {u}\n" for uses, _, _ in _MANAGE.values()
                            for u, _ in uses)
        return text + "  --json   print the result as JSON\n"
    out = ["usage: trainbot [--json] [--wait] COMMAND [ARGS …]",
           "       trainbot -h | --help | --version", "",
           "Training (the same words as Slack's slash command):"]
    out += [f"  trainbot {u}" for u in (w for v in USAGE.values() for w in v.split("  ·  "))]
    out += ["", "Running the bot:"]
    out += [f"  trainbot {use:<56} {what}" for use, what in _LOCAL.values()]
    out += ["", "Admin:"]
    out += [f"  trainbot admin {name:<50} {what}" for name, what in _ADMIN.items()]
    out += [f"  trainbot {_PUBLISH[0]:<56} {_PUBLISH[1]}"]
    out += ["", "Your own algorithms (admins and TRAINBOT_ALGORITHM_PUBLISHERS):"]
    out += [f"  trainbot {use:<56} {what}" for uses, _, _ in _MANAGE.values()
            for use, what in uses]
    out += ["", "Global options:"]
    out += [f"  {opt:<12} {what}" for opt, what in _GLOBAL]
    out += ["", "Parameters are key=value; quote values with spaces. "
                "`trainbot COMMAND --help` for one command."]
    return "\n".join(out) + "\n"


def _help(topic: str | None, *, as_json: bool) -> int:
    from bot.commands import USAGE

    if topic is not None and topic not in USAGE and topic.split()[0] in USAGE \
            and topic not in _MANAGE and topic != "algorithms publish":
        topic = topic.split()[0]  # `help model register`: the usage of `model`
    if topic is not None and topic not in USAGE and topic not in _LOCAL \
            and topic not in ("admin", "algorithms publish", *_MANAGE):
        raise InvalidInput(f"There's no command `{topic[:40]}`.",
                           hint=_did_you_mean(topic, _ALL_COMMANDS) + "See `trainbot --help`.")
    if as_json:
        commands = {name: [f"trainbot {u}" for u in use.split("  ·  ")]
                    for name, use in USAGE.items()}
        commands |= {name: [f"trainbot {use}"] for name, (use, _) in _LOCAL.items()}
        commands["admin"] = [f"trainbot admin {name}" for name in _ADMIN]
        commands["algorithms publish"] = [f"trainbot {_PUBLISH[0]}"]
        commands |= {name: [f"trainbot {u}" for u, _ in uses]
                     for name, (uses, _, _) in _MANAGE.items()}
        out = {"commands": commands if topic is None else {topic: commands[topic]},
               "global_options": [opt for opt, _ in _GLOBAL]}
        print(json.dumps(out, indent=2, ensure_ascii=False))
        return 0
    print(_usage(topic), end="")
    return 0


def _did_you_mean(word: str, candidates: Sequence[str]) -> str:
    import difflib

    close = difflib.get_close_matches(word, list(candidates), n=3, cutoff=0.6)
    if not close:
        return ""
    return "Did you mean " + " or ".join(f"`{c}`" for c in close) + "? "


def _terminal(text: str) -> str:
    """An error as a terminal shows it: the CLI's words, no Slack markup."""
    from bot.views.text import plain

    return plain(text.replace("/train ", "trainbot "))


def _log_to_file() -> Path | None:
    """Diagnostics (tracebacks under an error id) go to TRAINBOT_HOME/trainbot.log (0600, in
    a 0700 home); the terminal gets one readable line per problem. Returns the log's path,
    or None when it can't be written (then errors go to stderr)."""
    from bot.bootstrap import private_file, private_home

    home = Path(os.environ.get("TRAINBOT_HOME") or Path.home() / ".trainbot")
    path = home / "trainbot.log"
    try:
        private_home(home)
        private_file(path)
        logging.basicConfig(filename=path, level=logging.INFO,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    except OSError:
        logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
        return None
    return path


def _command(args: list[str], *, as_json: bool) -> int:
    import shlex

    from bot.bootstrap import build_deps
    from bot.cli_wait import wait_sweep, wait_version
    from bot.commands import Approve, Rerun, Start, StartForm, Stop, Sweep, parse
    from bot.config import load_settings
    from bot.dispatch import Actor, execute

    settings = load_settings()
    cmd = parse(shlex.join(args))
    if isinstance(cmd, StartForm):
        print("usage: trainbot start ALGORITHM [key=value …] (see `trainbot start --help`)",
              file=sys.stderr)
        return 2
    # This process ends with the command: a TensorBoard it starts stays for `trainbot tb`.
    # Sweeps go on in `serve`/`run` (or `--wait`), not as a side effect of any command.
    deps = build_deps(settings, detach_tensorboard=True, drive_sweeps=False)
    try:
        reply = execute(deps, cmd, Actor(user=settings.user, channel=None, trusted=True))
    except TrainbotError as exc:
        raise _with_suggestion(deps, exc) from exc
    awaiting_sweep = isinstance(reply.data, tuple) and \
        reply.data[0].status.value == "AWAITING_APPROVAL"
    if isinstance(cmd, Sweep | Approve) and cmd.wait and isinstance(reply.data, tuple) and \
            not awaiting_sweep:  # an approver decides first, as for a start
        final_sweep = wait_sweep(deps, reply.data[0].name, quiet=as_json)
        if as_json:
            _print_json(_reply_json(deps, cmd, final_sweep))
        else:
            from bot.views.text import render_text

            print(render_text(final_sweep.doc), end="")
        done = isinstance(final_sweep.data, tuple) and final_sweep.data[0].status.value == \
            "COMPLETED"
        return 0 if done else 1
    # A stop waits for the process to end: this short-lived process is what signals it.
    waits = isinstance(cmd, Stop) or (isinstance(cmd, Start | Rerun | Approve) and cmd.wait)
    awaiting = reply.approval is not None and reply.approval.pending
    if waits and reply.version is not None and not awaiting:
        final = wait_version(deps, reply.version, quiet=as_json)
        if as_json:
            _print_json(_version_json(deps, final))
        else:
            _print_card(deps, final)
        return 0 if final.status.value == "COMPLETED" or isinstance(cmd, Stop) else 1
    if as_json:
        _print_json(_reply_json(deps, cmd, reply))
    else:
        from bot.views.text import render_text

        print(render_text(reply.doc), end="")
    return 0


# NotFound / InvalidInput messages that name something the user may have mistyped, and where
# to look for what they meant.
_MISTYPED = (
    (re.compile(r"^There is no algorithm `([^`]+)`"), lambda d: [a.id for a in d.algorithms.all()]),
    (re.compile(r"^There is no registered algorithm `([^`]+)`"),
     lambda d: [a.id for a in d.store.list_registered_algorithms(d.scope)]),
    (re.compile(r"^There is no resource pool `([^`]+)`"), lambda d: list(d.catalog.pools)),
    (re.compile(r"^No job named `([^`]+)`"),
     lambda d: [j.name for j in d.store.list_jobs(limit=500)]),
    (re.compile(r"^No preset named `([^`]+)`"), lambda d: [p.name for p in _presets(d)]),
)


def _presets(deps: Deps) -> list[Preset]:
    from bot.services.presets import list_presets

    return list_presets(deps)


def _with_suggestion(deps: Deps, exc: TrainbotError) -> TrainbotError:
    """``exc`` with "Did you mean …?" in front of its hint when the name is close to one that
    exists; ``exc`` itself otherwise."""
    for pattern, candidates in _MISTYPED:
        m = pattern.match(exc.message)
        if m is None:
            continue
        try:
            names = candidates(deps)
        except TrainbotError:
            return exc
        hint = _did_you_mean(m.group(1), names)
        if not hint:
            return exc
        return type(exc)(exc.message, hint=hint + (exc.hint or ""))
    return exc


def _reply_json(deps: Deps, cmd: Command, reply: Reply) -> object:
    """The reply's data as JSON (see bot.views.data for the objects)."""
    from bot.commands import (
        Approve,
        BudgetList,
        BudgetRemove,
        BudgetSet,
        Logs,
        Models,
        Reject,
        Tb,
        Versions,
    )
    from bot.domain import Algorithm, Lineage, ModelVersion, Preset, ResourcePool
    from bot.domain.cost import CostReport
    from bot.services.models import Registration
    from bot.services.queries import StatusOverview, VersionDiff
    from bot.views import data

    algorithm_of = deps.algorithms.find
    found = reply.data
    from bot.domain.sweep import Sweep

    if isinstance(found, tuple) and found and isinstance(found[0], Sweep):
        return data.sweep_data(found[0], list(found[1]))
    if isinstance(found, CostReport):
        return data.cost_report_data(found)
    if isinstance(cmd, BudgetList | BudgetSet) and isinstance(found, list):
        return data.budgets_data(found)
    if isinstance(cmd, BudgetRemove):
        return {"removed": True, "scope": cmd.scope, "subject": cmd.subject}
    if isinstance(cmd, Models) and isinstance(found, dict):
        if cmd.group is not None:  # one group: its versions
            return [data.model_data(m) for versions in found.values() for m in versions]
        return data.model_groups_data(found)
    if isinstance(found, Registration):
        return data.model_data(found.model) | {"created": found.created}
    if isinstance(found, ModelVersion):
        return data.model_data(found)
    if isinstance(cmd, Versions) and isinstance(found, list):
        return [data.version_row(v, algorithm_of) for v in found]
    if isinstance(cmd, Approve | Reject) and reply.approval and reply.version:
        return {"approval": data.approval_data(reply.approval),
                "version": _version_json(deps, reply.version)}
    if reply.approval is not None and reply.version is not None:  # start/rerun awaiting approval
        return _version_json(deps, reply.version) | {
            "approval": data.approval_data(reply.approval)}
    if isinstance(cmd, Logs) and reply.version:
        return {"job": reply.version.job, "number": reply.version.number, "lines": found}
    if isinstance(cmd, Tb) and reply.version:
        return {"job": reply.version.job, "number": reply.version.number, "url": found}
    if isinstance(found, list):
        return [_one(x) for x in found]
    if isinstance(found, StatusOverview):
        return data.status_data(found, algorithm_of)
    if isinstance(found, VersionDiff):
        return data.diff_data(found)
    if isinstance(found, Lineage):
        return data.lineage_data(found)
    if isinstance(found, (Preset, Algorithm, ResourcePool)):
        return _one(found)
    if reply.version is not None:
        return _version_json(deps, reply.version)
    from bot.views.text import plain

    return {"title": plain(reply.doc.title)}


def _one(x: object) -> object:
    from bot.domain import Algorithm, Preset, ResourcePool
    from bot.views import data

    if isinstance(x, ResourcePool):
        return data.pool_data(x)
    if isinstance(x, Algorithm):
        return data.algorithm_data(x)
    if isinstance(x, Preset):
        return data.preset_data(x)
    raise TypeError(f"no JSON view for {type(x).__name__}")


def _version_json(deps: Deps, version: JobVersion) -> dict:
    from bot.services import queries
    from bot.views import data

    approval = deps.store.get_approval(version.approval_id) if version.approval_id else None
    return data.version_data(version, deps.algorithms.find, links=queries.links(deps, version),
                             approval=approval)


def _print_json(out: object) -> None:
    print(json.dumps(out, indent=2, default=str, ensure_ascii=False))


def _print_card(deps: Deps, version: JobVersion) -> None:
    from bot.services import queries
    from bot.views import presenters
    from bot.views.text import render_text

    doc = presenters.version_card(version, queries.links(deps, version),
                                  algorithm=deps.algorithms.find(version.spec))
    print(render_text(doc), end="")


class _Options(argparse.ArgumentParser):
    """argparse whose mistakes are trainbot's: one `error:` line and exit 2 (main's)."""

    def error(self, message: str) -> NoReturn:
        raise InvalidInput(f"{message}.", hint=f"See `{self.prog} --help`.")


def _manage_algorithms(sub: str, args: list[str], *, as_json: bool) -> int:
    """`trainbot algorithms add …` / `remove ID`: a team's own algorithms."""
    from bot import publish as publishing
    from bot.bootstrap import build_deps
    from bot.config import load_settings
    from bot.services import registration

    if "-h" in args or "--help" in args:
        print(_usage(f"algorithms {sub}"), end="")
        return 0
    parser = _Options(prog=f"trainbot algorithms {sub}", add_help=False)
    if sub == "remove":
        parser.add_argument("id")
    else:
        parser.add_argument("path", nargs="?", type=Path)
        for option in ("--image", "--manifest", "--cpu-image", "--gpu-image"):
            parser.add_argument(option)
    opts = parser.parse_args(args)
    settings = load_settings()
    shelf = None if sub == "remove" else publishing.shelf_for(
        settings, path=opts.path, image=opts.image, manifest=opts.manifest,
        cpu_image=opts.cpu_image, gpu_image=opts.gpu_image)
    deps = build_deps(settings, detach_tensorboard=True, recover=False)
    try:
        if sub == "remove":
            algorithm, changed = registration.remove(deps, opts.id, user=settings.user)
        elif shelf is None:
            algorithm, changed = registration.add_image(deps, opts.image, Path(opts.manifest),
                                                        user=settings.user)
        else:
            algorithm, changed = registration.add_script(deps, opts.path, user=settings.user,
                                                         packer=shelf)
    except TrainbotError as exc:
        raise _with_suggestion(deps, exc) from exc
    if as_json:
        flag = "removed" if sub == "remove" else "created"
        _print_json(publishing.registered_json(algorithm) | {flag: changed})
    else:
        print(publishing.registered_text(algorithm, removed=sub == "remove", changed=changed),
              end="")
    source = algorithm.source
    if sub == "add" and source and source.image and "@sha256:" not in source.image:
        print(f"note: the tag of {source.image} can be moved; pin the image by digest "
              "(…@sha256:…) so every run runs exactly this image.", file=sys.stderr)
    return 0


def _reconcile() -> int:
    """One pass of what the scheduled Lambda does: repair missed events, expire requests."""
    from bot.bootstrap import build_deps
    from bot.config import load_settings
    from bot.services.reconcile import reconcile

    summary = reconcile(build_deps(load_settings(), detach_tensorboard=True))
    print(json.dumps(summary.as_dict(), indent=2, default=str, ensure_ascii=False))
    return 0


def _stop_tensorboard() -> int:
    """Stop the TensorBoard server of this TRAINBOT_HOME (the one the CLI leaves running)."""
    from bot.adapters.tensorboard_local import LocalTensorBoard
    from bot.config import load_settings

    settings = load_settings()
    board = LocalTensorBoard(settings.runs_dir, state_dir=settings.home)
    was_running = board.running()
    board.stop()
    print("TensorBoard stopped" if was_running else "no TensorBoard was running")
    return 0


def _init_store() -> int:
    from bot.adapters.dynamodb_schema import ensure_tables
    from bot.aws import aws_client
    from bot.config import load_settings

    settings = load_settings()
    created = ensure_tables(aws_client("dynamodb"), settings.table, settings.idempotency_table)
    print("created: " + ", ".join(created) if created else "tables already exist")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
