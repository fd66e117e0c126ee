"""Bad input: whatever people type or submit gets HTTP 200 and a helpful ephemeral, never an
exception; outsized output stays inside Block Kit's limits (50 blocks, 3,000 characters).

Generated commands and modal submissions go through the real Bolt app as signed requests,
on one Harness for the whole module; its compute is a fake (launches cost nothing).
"""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.adapters.algorithm_catalog import PublishedAlgorithm, PublishedCatalog
from bot.adapters.sagemaker.compute import SageMakerCompute
from bot.adapters.sagemaker.request import SageMakerSetup, plan_launch
from bot.commands import COMMANDS, StartForm, parse
from bot.config import Settings
from bot.domain import (
    BackendRejected,
    InvalidInput,
    JobSpec,
    JobVersion,
    Preset,
    Status,
)
from bot.localslack.signing import slash_command_body, view_submission_body
from bot.services import presets
from bot.services.requests import LaunchRequest, start_job
from tests.fakes import FakeCompute, MemoryStore
from tests.integration.slack_harness import CHANNEL, Harness
from tests.reliability.conftest import MAX_TEXT, TOY, block_kit_problems, fast_harness, service_deps

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
HUGE_LINE = "x" * 10_000
_users = (f"U0HYP{n:05d}" for n in itertools.count())
_views = (f"VHYP{n:06d}" for n in itertools.count())


class HugeLogs(FakeCompute):
    """A compute whose runs log 10,000-character lines."""

    def logs(self, version: JobVersion, *, lines: int = 50) -> list[str]:
        return [f"{i}: {HUGE_LINE}" for i in range(lines)]


class Problems(logging.Handler):
    """Every ERROR record, and any "unexpected error" line, from any logger."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR or "unexpected error" in record.getMessage():
            self.records.append(record)


@pytest.fixture(scope="module")
def h(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    harness = fast_harness(tmp_path_factory.mktemp("bad-input"), algorithms=["quick-metrics"],
                           approvers=["U0LOCAL2"])
    harness.bot.deps.compute = HugeLogs()
    yield harness
    harness.close()


@pytest.fixture(scope="module")
def problems() -> Iterator[Problems]:
    handler = Problems()
    logging.getLogger().addHandler(handler)
    yield handler
    logging.getLogger().removeHandler(handler)


def assert_helpful(message: dict | str) -> str:
    text = message if isinstance(message, str) else json.dumps(message)
    assert "Traceback" not in text and "Something went wrong" not in text, text[:500]
    if isinstance(message, dict):
        assert message.get("text", "").strip() or message.get("blocks"), message
    return text


def answer_to(h: Harness, text: str, user: str) -> dict:
    """Post ``/train text`` signed; return what the user was told (ack or response_url)."""
    inter = h.slack.new_interaction(CHANNEL, user)
    token = inter["response_url"].rsplit("/", 1)[1]
    body = slash_command_body(text, user_id=user, user_name=user, channel_id=CHANNEL,
                              response_url=inter["response_url"], trigger_id=inter["trigger_id"])
    status, raw = h.post(body)
    assert status == 200, raw
    ack = json.loads(raw)
    assert ack.get("response_type") == "ephemeral", ack
    assert block_kit_problems(h.slack, extra=[ack], since=len(h.slack.requests)) == []
    if not ack["text"].startswith(":hourglass:"):
        return ack  # answered in the ack: help or a parse error
    if isinstance(parse(text), StartForm):
        opened = h.wait(lambda: [r for r in h.slack.requests_for("views.open")
                                 if r.params.get("trigger_id") == inter["trigger_id"]], 10)
        return {"text": "modal", "blocks": opened[0].params["view"]["blocks"]}
    found = h.wait(lambda: [r.params for r in h.slack.requests_for("_local.response")
                            if r.params.get("token") == token], 10)
    assert len(found) == 1, found
    return found[0]


def check_command(h: Harness, problems: Problems, text: str) -> None:
    before, seen = len(problems.records), len(h.slack.requests)
    answer = answer_to(h, text, next(_users))
    assert_helpful(answer)
    assert block_kit_problems(h.slack, extra=[answer], since=seen) == []
    assert problems.records[before:] == []


WORDS = st.sampled_from([
    "quick-metrics", "toy", "exp", "v1", "v0", "v2", "v99999999", "epochs=3", "epochs=abc",
    "epochs=-1", "epochs=1e309", "sleep_s=nan", "optimizer=adam", "optimizer=", "=3", "k=v=w",
    "--pool", "local-cpu", "gpu-8", "--data", "train=s3://evil/x", "train=file:///etc",
    "--name", "n" * 41, "bad_name", "--spot", "--max-runtime", "2h", "99999999d", "--preset",
    "--from", "--description", "--reason", "--wait", "--json", "list", "show", "delete", "save",
    "'", '"', "“quoted”", "\\", "\n", "\u00a0", "<!channel>", "*bold*", "`code`", "x" * 300,
])
COMMAND_SHAPED = st.builds(
    lambda verb, words: " ".join([verb, *words]),
    st.sampled_from([*COMMANDS, "", "START", "Status", "preset", "nope"]),
    st.lists(WORDS | st.text(max_size=12), max_size=8),
)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.text(max_size=300))
def test_any_text_gets_200_and_a_helpful_ephemeral(
    h: Harness, problems: Problems, text: str
) -> None:
    check_command(h, problems, text)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=COMMAND_SHAPED)
def test_command_shaped_text_gets_200_and_a_helpful_ephemeral(
    h: Harness, problems: Problems, text: str
) -> None:
    check_command(h, problems, text)


# -- modal submissions --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def start_form(h: Harness) -> dict:
    """The start form as the app builds it (after choosing quick-metrics in step one)."""
    user = next(_users)
    answer_to(h, "start", user)
    choose = h.wait(lambda: next((v for v in h.slack.views() if v["callback_id"] ==
                                  "start_choose" and v["user"] == user), None))
    status, raw = h.post(view_submission_body(choose, {
        "source": {"value": {"type": "static_select",
                             "selected_option": {"value": "algo:quick-metrics"}}},
    }, user_id=user))
    assert status == 200
    return json.loads(raw)["view"]


JUNK = st.one_of(st.none(), st.text(max_size=40), st.sampled_from(
    ["0", "-1", "1e309", "nan", "inf", "3.5", "1000", "1001", "adam", "true", "false", "sgd"]))


def _state(kind: str, value: str | None) -> dict[str, Any]:
    if kind == "static_select":
        return {"type": kind, "selected_option": None if value is None else {"value": value}}
    return {"type": kind, "value": value}


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values=st.fixed_dictionaries(
    {b: JUNK for b in ("hp:epochs", "hp:sleep_s", "hp:optimizer", "hp:augment", "pool")},
    optional={"hp:unknown": JUNK, "hp:": JUNK, "name": JUNK}))
def test_start_form_with_random_values_is_answered(
    h: Harness, problems: Problems, start_form: dict, values: dict[str, str | None]
) -> None:
    before = len(problems.records)
    user = next(_users)
    kinds = {b["block_id"]: b["element"]["type"] for b in start_form["blocks"]
             if b["type"] == "input"}
    state = {block: {"value": _state(kinds.get(block, "plain_text_input"), raw)}
             for block, raw in values.items()}
    view = dict(start_form, id=next(_views))

    status, raw = h.post(view_submission_body(view, state, user_id=user))

    assert status == 200, raw
    ack = json.loads(raw) if raw.strip() else {}
    if ack.get("response_action") == "errors":
        assert ack["errors"] and all(0 < len(m) <= 150 for m in ack["errors"].values()), ack
        assert set(ack["errors"]) <= set(kinds) | set(values), ack  # at submitted inputs
    else:
        assert ack.get("response_action") == "clear", ack
        told = h.wait(lambda: h.slack.ephemerals(user), 10)
        assert_helpful(told[0])
    assert problems.records[before:] == []


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(source=JUNK, pool=JUNK, name=JUNK)
def test_start_choice_with_random_values_is_answered(
    h: Harness, problems: Problems, source: str | None, pool: str | None, name: str | None
) -> None:
    before = len(problems.records)
    choose = {"id": next(_views), "callback_id": "start_choose", "type": "modal",
              "private_metadata": json.dumps({"channel": CHANNEL})}
    state = {"source": {"value": _state("static_select", source)},
             "pool": {"value": _state("static_select", pool)},
             "name": {"value": _state("plain_text_input", name)}}

    status, raw = h.post(view_submission_body(choose, state, user_id=next(_users)))

    assert status == 200, raw
    ack = json.loads(raw)
    assert ack["response_action"] in ("errors", "update"), ack
    if ack["response_action"] == "errors":
        assert all(0 < len(m) <= 150 for m in ack["errors"].values()), ack
    assert problems.records[before:] == []


# -- parameters, buckets and names at the service level -----------------------------------------

@pytest.mark.parametrize(("params", "says"), [
    ({"note": "y" * 10_000}, "note"),
    ({"optimizer": "z" * 10_000}, "optimizer"),
    ({"epoch": "3"}, "`epoch` is not a parameter of toy"),
    ({"x" * 10_000: "1"}, "is not a parameter of toy"),
    ({"epochs": "three"}, "epochs"),
    ({"epochs": "3.5"}, "epochs"),
    ({"epochs": True}, "epochs"),
    ({"epochs": [1, 2]}, "epochs"),
    ({"lr": "nan"}, "lr"),
    ({"lr": "inf"}, "lr"),
    ({"lr": "1e309"}, "lr"),
    ({"optimizer": "rmsprop"}, "optimizer"),
    ({"optimizer": None}, "optimizer"),
], ids=lambda x: str(x)[:30])
def test_bad_parameters_are_refused_with_a_short_clear_message(params: dict, says: str) -> None:
    deps = service_deps(MemoryStore())

    with pytest.raises(InvalidInput) as raised:
        start_job(deps, LaunchRequest(user="U1", algorithm="toy", params=params))

    text = raised.value.user_text()
    assert says in text and len(text) <= 1000, text[:300]
    assert deps.store.list_jobs() == []


def test_oversized_command_through_slack_is_refused_in_the_ack(
    h: Harness, problems: Problems
) -> None:
    answer = answer_to(h, "start quick-metrics optimizer=" + "z" * 10_000, next(_users))
    assert "too long" in assert_helpful(answer)
    answer = answer_to(h, "start quick-metrics optimizer=" + "z" * 3_900, next(_users))
    text = assert_helpful(answer)
    assert "optimizer" in text and len(answer["text"]) <= 1000


@pytest.mark.parametrize("name", [
    "bad name", "-lead", "trail-", "a_b", "a.b", "ünïcode", "n" * 41, "abc\n", "../etc",
    "a/b", "a\tb",
], ids=repr)
def test_job_names_that_arent_valid_sagemaker_names_are_refused(name: str) -> None:
    deps = service_deps(MemoryStore())

    with pytest.raises(InvalidInput) as raised:
        start_job(deps, LaunchRequest(user="U1", algorithm="toy", job_name=name))

    assert "not a valid job name" in raised.value.user_text()
    assert deps.store.list_jobs() == []


def test_job_name_with_a_trailing_newline_through_slack_is_refused(
    h: Harness, problems: Problems
) -> None:
    answer = answer_to(h, 'start quick-metrics --name "late\n"', next(_users))
    assert "not a valid job name" in assert_helpful(answer)
    assert all(not j.name.startswith("late") for j in h.bot.deps.store.list_jobs())


@pytest.mark.parametrize("name", ["nightly\n", "a b", "x" * 65, "", "ünï"], ids=repr)
def test_preset_names_that_arent_valid_are_refused(name: str) -> None:
    deps = service_deps(MemoryStore())
    with pytest.raises(InvalidInput):
        presets.save_preset(deps, user="U1", name=name, algorithm="toy")
    assert deps.store.list_presets(deps.scope) == []


@pytest.mark.parametrize("uri", [
    "s3://team-ml/x\n", "http://evil.example/x", "s3://", "s3://UPPER/x", "file://relative",
    "s3://team-ml/a b", "builtin:", "ftp://x/y",
], ids=repr)
def test_malformed_data_uris_are_refused(uri: str) -> None:
    deps = service_deps(MemoryStore())
    with pytest.raises(InvalidInput) as raised:
        start_job(deps, LaunchRequest(user="U1", algorithm="toy", data={"train": uri}))
    assert "train" in raised.value.user_text()
    assert deps.store.list_jobs() == []


PUBLISHED = PublishedAlgorithm(
    version="1.0.0", digest="ef" * 32, entry_point="train.py",
    source_uri="s3://team-ml/trainbot/algorithms/toy/1.0.0/efefefefefefefef/sourcedir.tar.gz",
    images={"cpu": "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.5-cpu-py311",
            "gpu": "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.5-gpu-py311"},
)


class Tripwire:
    """An AWS client that must not be called."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"AWS was called ({name}) for a request that should be refused")


@pytest.mark.parametrize("uri", [
    "s3://evil/data", "s3://team-ml-evil/data", "s3://team-ml.evil.com/data", "s3://sharedx/data",
])
def test_s3_data_outside_the_allowed_buckets_is_refused_before_aws_is_called(uri: str) -> None:
    configured = Settings(allowed_buckets="team-ml, shared")  # type: ignore[arg-type]
    compute = SageMakerCompute(
        sagemaker_client=Tripwire(), logs_client=Tripwire(), s3_client=Tripwire(),
        catalog=PublishedCatalog(region="us-east-1", bucket="team-ml",
                                 algorithms={"toy": PUBLISHED}),
        role_arn="arn:aws:iam::123456789012:role/t", bucket="team-ml", region="us-east-1",
        allowed_buckets=configured.allowed_buckets)
    deps = service_deps(MemoryStore(), compute=compute)

    with pytest.raises(BackendRejected) as raised:
        start_job(deps, LaunchRequest(user="U1", algorithm="toy", pool="gpu-1",
                                      data={"train": uri}, job_name="exfil"))

    assert "may not use" in raised.value.user_text() and "`team-ml`" in raised.value.user_text()
    v = deps.store.get_version("exfil", 1)
    assert v.status is Status.FAILED and "may not use" in (v.failure_reason or "")


def test_s3_data_in_an_allowed_bucket_is_accepted() -> None:
    spec = JobSpec(algorithm="toy", algorithm_version="1.0.0", pool="gpu-1",
                   data={"train": "s3://shared/prefix/"})
    v = JobVersion(job="ok", number=1, spec=spec, requested_by="U1", status=Status.QUEUED,
                   created_at=NOW, updated_at=NOW, backend_job_name="trainbot-ok-v1-abcd")
    from bot.catalog import load_pools

    setup = SageMakerSetup(role_arn="arn:aws:iam::1:role/t", bucket="team-ml",
                           region="us-east-1", allowed_buckets=("team-ml", "shared"))
    plan = plan_launch(v, TOY, load_pools()["gpu-1"], PUBLISHED, setup)
    uris = [c["DataSource"]["S3DataSource"]["S3Uri"] for c in plan.request["InputDataConfig"]]
    assert uris == ["s3://shared/prefix/"]


# -- Block Kit limits on huge output ------------------------------------------------------------

@pytest.fixture(scope="module")
def crowded(h: Harness) -> Harness:
    """200 active versions of one job, 30 recent failures with long reasons, 120 presets."""
    store = h.bot.deps.store
    spec = JobSpec(algorithm="quick-metrics", algorithm_version="1.0.0", pool="local-cpu",
                   hyperparameters={"epochs": 3, "optimizer": "x" * 200})
    from bot.domain import TrainingJob

    now = h.bot.deps.clock.now()
    first = True
    for i in range(230):
        status = [Status.TRAINING, Status.QUEUED, Status.AWAITING_APPROVAL][i % 3]
        draft = JobVersion(job="crowd", number=0, spec=spec, requested_by=f"U0CROWD{i}",
                           status=status, created_at=now, updated_at=now, channel=CHANNEL,
                           backend_job_name=f"trainbot-crowd-v{i + 1}-abcd"
                           if status is Status.TRAINING else None, backend="fake")
        job = TrainingJob(name="crowd", owner="U0CROWD0", channel=CHANNEL, created_at=now)
        stored, _ = store.add_version(draft, new_job=job if first else None)
        first = False
        if i >= 200:
            store.save_version(stored.transition(Status.FAILED, at=now).model_copy(
                update={"failure_reason": "E" * 5000, "log_tail": [HUGE_LINE] * 30}))
    for i in range(120):
        store.create_preset(Preset(
            name=f"preset-{i:03d}", scope=h.bot.deps.scope, description="d" * 256, spec=spec,
            owner="U0LOCAL1", created_at=now, updated_at=now))
    return h


@pytest.mark.parametrize("text", [
    "status", "preset list", "logs crowd v1", "versions crowd", "show crowd v1",
    "show crowd v230", "lineage crowd v230", "eval crowd v230", "preset show preset-119",
    "help", "algorithms quick-metrics", "pools", "diff crowd v1 v230",
])
def test_huge_outputs_stay_within_block_kit_limits(
    crowded: Harness, problems: Problems, text: str
) -> None:
    before, seen = len(problems.records), len(crowded.slack.requests)
    answer = answer_to(crowded, text, next(_users))

    assert_helpful(answer)
    assert block_kit_problems(crowded.slack, extra=[answer], since=seen) == []
    assert len(answer.get("blocks") or []) <= 50
    assert all(len(t) <= MAX_TEXT for t in [answer.get("text", "")])
    assert problems.records[before:] == []


def test_every_message_the_stand_in_received_is_within_limits(h: Harness) -> None:
    """Cards, threads and announcements from everything this module sent, not only replies."""
    assert block_kit_problems(h.slack) == []

