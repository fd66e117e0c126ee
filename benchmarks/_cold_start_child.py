"""One cold Lambda container, as a fresh process, for ``bench_cold_start.py``.

    python benchmarks/_cold_start_child.py trainbot|minimal ack EVENT_JSON INVOKE_OUT
    python benchmarks/_cold_start_child.py trainbot|minimal lazy INVOKE_JSON

``ack``: answers one signed API Gateway event; Bolt's lazy re-invocation makes the real Lambda
client (its cost counts, as in Lambda) but writes the ``Invoke`` payload to ``INVOKE_OUT``
instead of sending it. ``lazy``: runs that payload — the second, asynchronous invocation —
as the next cold container would. ``minimal`` is Bolt's floor: one ``/train`` listener that
acks and, lazily, posts one message. Prints one ``COLD {json}`` line: phase times and
``end_wall`` (``time.time()`` when the handler returned); ``BENCH_SPAWN_WALL`` (the
parent's clock just before it started this process) adds the interpreter's start-up.
"""

import time

T0 = time.perf_counter()
T0_WALL = time.time()

import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402

FUNCTION = "trainbot-bench-slackEvents"


class _Context:
    """Lambda's context object: what Bolt and Powertools read."""

    function_name = FUNCTION
    memory_limit_in_mb = 512
    aws_request_id = "00000000-0000-4000-8000-000000000002"
    invoked_function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:{FUNCTION}"

    def get_remaining_time_in_millis(self) -> int:
        return 29_000


class _CapturingLambda:
    """Bolt's ``lambda_client``: the real client is made (``make()``), the Invoke is written
    to a file, not sent."""

    def __init__(self, make: object, out: str) -> None:
        self.make, self.out, self.calls = make, out, 0

    def invoke(self, *, FunctionName: str, InvocationType: str, Payload: str) -> dict:
        self.make()  # type: ignore[operator]
        self.calls += 1
        with open(self.out, "w", encoding="utf-8") as f:
            json.dump({"FunctionName": FunctionName, "InvocationType": InvocationType,
                       "Payload": Payload}, f)
        return {"StatusCode": 202}


def trainbot_handler(invoke_out: str | None) -> tuple[object, _CapturingLambda | None]:
    import functions.slack_events as slack_events
    from functions import runtime

    if invoke_out is None:
        return slack_events.handler, None
    runner = runtime.slack_handler().app.listener_runner.lazy_listener_runner
    real = runner.lambda_client
    fake = runner.lambda_client = _CapturingLambda(lambda: real.meta, invoke_out)
    return slack_events.handler, fake


def minimal_handler(invoke_out: str | None) -> tuple[object, _CapturingLambda | None]:
    from slack_bolt import App
    from slack_bolt.adapter.aws_lambda import SlackRequestHandler
    from slack_bolt.authorization import AuthorizeResult
    from slack_sdk import WebClient

    token = os.environ["SLACK_BOT_TOKEN"]

    def authorize(enterprise_id: str | None, team_id: str | None, **_: object
                  ) -> AuthorizeResult:
        return AuthorizeResult(enterprise_id=enterprise_id, team_id=team_id, bot_token=token)

    app = App(process_before_response=True, signing_secret=os.environ["SLACK_SIGNING_SECRET"],
              authorize=authorize, client=WebClient(base_url=os.environ["SLACK_API_URL"]))

    def ack_start(ack) -> None:  # type: ignore[no-untyped-def]
        ack(text="starting…")

    def post_card(body: dict, client) -> None:  # type: ignore[no-untyped-def]
        client.chat_postMessage(channel=body["channel_id"], text="version card")

    app.command("/train")(ack=ack_start, lazy=[post_card])
    handler = SlackRequestHandler(app)
    fake = None
    if invoke_out is not None:
        import boto3

        runner = app.listener_runner.lazy_listener_runner
        fake = runner.lambda_client = _CapturingLambda(lambda: boto3.client("lambda"),
                                                       invoke_out)
    return handler.handle, fake


def main() -> None:
    app, phase, source = sys.argv[1], sys.argv[2], sys.argv[3]
    invoke_out = sys.argv[4] if phase == "ack" else None
    with open(source, encoding="utf-8") as f:
        event = json.load(f) if phase == "ack" else json.loads(json.load(f)["Payload"])
    build = trainbot_handler if app == "trainbot" else minimal_handler
    handle, fake = build(invoke_out)
    t_built = time.perf_counter()
    response = handle(event, _Context())  # type: ignore[operator]
    end_wall = time.time()
    spawn = float(os.environ.get("BENCH_SPAWN_WALL") or T0_WALL)
    figures = {"startup": T0_WALL - spawn, "build": t_built - T0,
               "handle": time.perf_counter() - t_built, "end_wall": end_wall,
               "status": response["statusCode"], "invokes": fake.calls if fake else 0,
               "modules": len(sys.modules)}
    sys.stdout.flush()
    print("COLD " + json.dumps(figures), flush=True)


if __name__ == "__main__":
    main()
