"""`trainbot`: the same words as `/train`, plus running the bot and admin tasks.

    trainbot help | pools | start image-classification epochs=3 --wait | …   (the grammar)
    trainbot run                 the embedded default: bot + local Slack + terminal client
    trainbot serve [--port N] [--socket]
    trainbot chat                terminal client for a running local bot
    trainbot admin init-store    create the DynamoDB table(s) if missing
    trainbot admin reconcile     one pass of the scheduled reconciler (missed events, expiry)
    trainbot admin stop-tensorboard   stop the local TensorBoard server the CLI left running
    trainbot algorithms publish  package and publish the preset algorithms (AWS)
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from bot.domain import JobVersion, TrainbotError

__all__ = ["main"]

log = logging.getLogger("trainbot")


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    as_json = "--json" in args
    args = [a for a in args if a != "--json"]
    log_file = _log_to_file()
    try:
        if args[:1] in (["run"], ["serve"], ["chat"]):
            from bot.local_run import main as run_main

            return run_main(args)
        if args[:2] == ["admin", "init-store"]:
            return _init_store()
        if args[:2] == ["admin", "reconcile"]:
            return _reconcile()
        if args[:2] == ["admin", "stop-tensorboard"]:
            return _stop_tensorboard()
        if args[:2] == ["algorithms", "publish"]:
            from bot.publish import main as publish_main

            return publish_main(args[2:])
        return _command(args, as_json=as_json)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        from bot.error_text import user_text

        # The CLI's user runs it as themselves and can read the log: no "ask your admin".
        print(f"error: {user_text(exc, log=log, log_path=log_file)}", file=sys.stderr)
        return 2 if isinstance(exc, TrainbotError) else 70


def _log_to_file() -> Path | None:
    """Diagnostics (tracebacks under an error id) go to TRAINBOT_HOME/trainbot.log (0600, in
    a 0700 home); the terminal gets one readable line per problem. Returns the log's path,
    or None when it can't be written (then errors go to stderr)."""
    import os

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

    from bot.bootstrap import build_deps, stuck_after
    from bot.commands import parse
    from bot.config import load_settings
    from bot.dispatch import Actor, execute
    from bot.views.text import render_text

    settings = load_settings()
    cmd = parse(shlex.join(args))
    if cmd.name == "start" and not cmd.algorithm and not cmd.preset:
        print("usage: trainbot start ALGORITHM [key=value …] (see `trainbot help start`)",
              file=sys.stderr)
        return 2
    # This process ends with the command: a TensorBoard it starts stays for `trainbot tb`.
    deps = build_deps(settings, detach_tensorboard=True)
    reply = execute(deps, cmd, Actor(user=settings.user, channel=None, trusted=True),
                    stuck_after=stuck_after(settings))
    # A stop waits for the process to end: this short-lived process is what signals it.
    waits = cmd.wait or cmd.name == "stop"
    if waits and reply.version is not None and reply.approval is None:
        final = _wait(deps, reply.version, quiet=as_json)
        _print(final, render_text_fn=render_text, deps=deps, as_json=as_json, doc=None)
        return 0 if final.status.value == "COMPLETED" or cmd.name == "stop" else 1
    _print(reply.version, render_text_fn=render_text, deps=deps, as_json=as_json, doc=reply.doc)
    return 0


def _print(version, *, render_text_fn, deps, as_json: bool, doc) -> None:  # type: ignore[no-untyped-def]
    from bot.services import queries
    from bot.views import presenters

    if as_json:
        if version is not None:
            out = version.model_dump(mode="json")
            out["links"] = queries.links(deps, version).__dict__
        else:
            out = {"title": doc.title, "sections": [s.__dict__ for s in doc.sections]}
        print(json.dumps(out, indent=2, default=str))
        return
    if doc is None:
        doc = presenters.version_card(version, queries.links(deps, version),
                                      algorithm=deps.catalog.algorithms.get(version.spec.algorithm))
    print(render_text_fn(doc), end="")


def _wait(deps, version: JobVersion, *, quiet: bool) -> JobVersion:  # type: ignore[no-untyped-def]
    """Block until the version ends, drawing a progress line on stderr."""
    from bot.services.state_changes import refresh_progress

    last = ""
    while True:
        current = deps.store.get_version(version.job, version.number)
        if current.status.terminal:
            if not quiet and last:
                print(file=sys.stderr)
            return current
        current = refresh_progress(deps, current)
        line = _progress_line(current)
        if not quiet and line != last and sys.stderr.isatty():
            print("\r" + line.ljust(90), end="", file=sys.stderr, flush=True)
        elif not quiet and line != last:
            print(line, file=sys.stderr, flush=True)
        last = line
        time.sleep(0.5)


def _progress_line(v: JobVersion) -> str:
    p = v.progress
    head = f"{v.label} {v.status.value.lower()}"
    if p is None:
        return head
    bar = ""
    if p.percent is not None:
        filled = int(p.percent / 5)
        bar = f" [{'#' * filled}{'.' * (20 - filled)}] {int(p.current or 0)}/{int(p.total or 0)}"
    metrics = " ".join(f"{k}={x:.4g}" for k, x in list(p.metrics.items())[:3])
    return f"{head}{bar} {metrics}".rstrip()


def _reconcile() -> int:
    """One pass of what the scheduled Lambda does: repair missed events, expire requests."""
    from bot.bootstrap import build_deps, stuck_after
    from bot.config import load_settings
    from bot.services.reconcile import reconcile

    settings = load_settings()
    summary = reconcile(build_deps(settings, detach_tensorboard=True),
                        stuck_after=stuck_after(settings))
    print(json.dumps(summary.as_dict(), indent=2, default=str))
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
    from bot.bootstrap import aws_client
    from bot.config import load_settings

    settings = load_settings()
    created = ensure_tables(aws_client("dynamodb"), settings.table, settings.idempotency_table)
    print("created: " + ", ".join(created) if created else "tables already exist")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
