"""One cold Lambda container, as a fresh process: import, build, answer one signed event.

    python benchmarks/_cold_child.py trainbot|trainbot-sdk|minimal EVENT_JSON_FILE

Run by ``bench_cold_ack.py`` (which sets the environment and starts the moto server and
the Slack stand-in); prints one JSON line of phase timings. The clock starts on the first
line, before any import; ``BENCH_SPAWN_WALL`` (the parent's ``time.time()`` just before it
started this process) adds the interpreter's own start-up.
"""

import time

T0 = time.perf_counter()
T0_WALL = time.time()

import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402


class _Context:
    """Lambda's context object: what Bolt and Powertools read."""

    function_name = "trainbot-bench-slackEvents"
    memory_limit_in_mb = 512
    aws_request_id = "00000000-0000-4000-8000-000000000001"
    invoked_function_arn = (
        "arn:aws:lambda:us-east-1:123456789012:function:trainbot-bench-slackEvents")

    def get_remaining_time_in_millis(self) -> int:
        return 29_000


class _Lambda:
    """Bolt's lazy re-invocation goes here: recorded, not sent — but the real client is
    still made on the first call, as in Lambda, so its cost counts."""

    def __init__(self, real: object) -> None:
        self.real = real
        self.calls = 0

    def invoke(self, **_kwargs: object) -> dict:
        getattr(self.real, "meta")  # a LazyClient makes its boto3 client here  # noqa: B009
        self.calls += 1
        return {"StatusCode": 202}


def trainbot(event: dict) -> dict:
    import functions.slack_events as slack_events

    t_import = time.perf_counter()
    from functions import runtime

    timers = _instrument_build() if os.environ.get("BENCH_PROFILE_BUILD") else None
    handler = runtime.slack_handler()  # in Lambda: the first request, after init's imports
    runner = handler.app.listener_runner.lazy_listener_runner
    fake = runner.lambda_client = _Lambda(runner.lambda_client)
    t_build = time.perf_counter()
    response = slack_events.handler(event, _Context())
    t_done = time.perf_counter()
    figures = {"import": t_import - T0, "build": t_build - t_import,
               "handle": t_done - t_build, "status": response["statusCode"],
               "lazy_invokes": fake.calls, "body_bytes": len(response.get("body") or "")}
    if timers is not None:
        figures["steps"] = {k: [len(v), sum(v)] for k, v in timers.items()}
    return figures


def _instrument_build() -> dict[str, list[float]]:
    """Wrap the build's steps with wall-clock timers (negligible overhead, unlike cProfile).

    Imports ``bot.slack.wiring`` ahead of the build to reach it; the steps are looked up at
    call time, so wrapping their module attributes catches every call.
    """
    from functions import runtime

    timers: dict[str, list[float]] = {}

    def wrap(module: object, name: str, label: str) -> None:
        original = getattr(module, name)

        def timed(*args: object, **kwargs: object) -> object:
            began = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                timers.setdefault(label, []).append(time.perf_counter() - began)

        setattr(module, name, timed)

    import bot.slack.wiring as wiring

    wrap(runtime, "load_slack_settings", "Slack secrets (2 reads: extension or SDK)")
    wrap(wiring, "build_slack_bot", "Bolt app with its listeners, WebClient")
    wrap(runtime, "lambda_client", "· Lambda client (made by a lazy re-invocation)")
    return timers


def minimal(event: dict) -> dict:
    from slack_bolt import App
    from slack_bolt.adapter.aws_lambda import SlackRequestHandler
    from slack_bolt.authorization import AuthorizeResult

    t_import = time.perf_counter()
    token = os.environ["SLACK_BOT_TOKEN"]

    def authorize(enterprise_id: str | None, team_id: str | None, **_: object
                  ) -> AuthorizeResult:
        return AuthorizeResult(enterprise_id=enterprise_id, team_id=team_id, bot_token=token)

    app = App(process_before_response=True, signing_secret=os.environ["SLACK_SIGNING_SECRET"],
              authorize=authorize)

    @app.command("/train")
    def _ack(ack) -> None:  # type: ignore[no-untyped-def]
        ack()

    handler = SlackRequestHandler(app)
    t_build = time.perf_counter()
    response = handler.handle(event, _Context())
    t_done = time.perf_counter()
    return {"import": t_import - T0, "build": t_build - t_import, "handle": t_done - t_build,
            "status": response["statusCode"], "lazy_invokes": 0,
            "body_bytes": len(response.get("body") or "")}


def main() -> None:
    mode, event_file = sys.argv[1], sys.argv[2]
    with open(event_file, encoding="utf-8") as f:
        event = json.load(f)
    figures = minimal(event) if mode == "minimal" else trainbot(event)
    end_wall = time.time()
    figures["in_process"] = time.perf_counter() - T0
    spawn = float(os.environ.get("BENCH_SPAWN_WALL") or T0_WALL)
    figures["startup"] = T0_WALL - spawn
    figures["from_spawn"] = end_wall - spawn
    figures["modules"] = len(sys.modules)
    sys.stdout.flush()
    print("COLD " + json.dumps(figures), flush=True)


if __name__ == "__main__":
    main()
