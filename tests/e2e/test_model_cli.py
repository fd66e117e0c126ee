"""Models from the `trainbot` CLI, as a user runs it: register, list, approve, refuse."""

from __future__ import annotations

import json

from tests.e2e.test_cli import env, trainbot

__all__ = ["env"]  # the fixture, used by name


def test_register_list_and_approve_a_model(env: dict[str, str]) -> None:
    trainbot(env, "start", "quick-metrics", "epochs=3", "--name", "sw", "--wait")
    trainbot(env, "rerun", "sw", "epochs=1", "--wait")
    versions = json.loads(trainbot(env, "--json", "versions", "sw").stdout)
    best = max(versions, key=lambda v: v["objective"]["value"])

    registered = json.loads(trainbot(env, "--json", "model", "register", "sw").stdout)
    assert registered["created"] is True and registered["version"] == best["number"]

    [group] = json.loads(trainbot(env, "--json", "models").stdout)
    assert group["group"] == "sw"
    [model] = group["versions"]
    assert (model["label"], model["status"], model["registered_by"]) == (
        "sw v1", "PendingManualApproval", "alice")
    assert model["objective"]["metric"] == "validation:accuracy"
    assert model["artifact"].startswith("file://") and model["lineage"]["job"] == "sw"

    approvers = dict(env, TRAINBOT_APPROVERS="alice,bob")
    refused = trainbot(approvers, "model", "approve", "sw", "v1", check=False)
    assert refused.returncode == 2 and "you registered it" in refused.stderr
    outsider = trainbot(dict(approvers, TRAINBOT_USER="carol"), "model", "approve", "sw", "v1",
                        check=False)
    assert outsider.returncode == 2 and "Only approvers" in outsider.stderr

    approved = json.loads(trainbot(dict(approvers, TRAINBOT_USER="bob"), "--json", "model",
                                   "approve", "sw", "v1", "--note", "best trial").stdout)
    assert (approved["status"], approved["decided_by"], approved["note"]) == (
        "Approved", "bob", "best trial")
    [model] = json.loads(trainbot(env, "--json", "models", "sw").stdout)
    assert model["status"] == "Approved"
    again = trainbot(dict(approvers, TRAINBOT_USER="bob"), "model", "reject", "sw", "v1",
                     check=False)
    assert again.returncode == 2 and "already approved by @bob" in again.stderr
    assert "model sw v1 — Approved" in trainbot(env, "lineage", "sw", f"v{best['number']}").stdout


def test_a_running_or_unknown_job_is_refused_with_one_error_line(env: dict[str, str]) -> None:
    missing = trainbot(env, "model", "register", "nope", check=False)
    assert missing.returncode == 2 and missing.stderr.startswith("error: ")
    none = trainbot(env, "models", "nope", check=False)
    assert none.returncode == 2 and "No models are registered yet" in none.stderr


def test_model_commands_have_help(env: dict[str, str]) -> None:
    out = trainbot(env, "--help").stdout
    assert "trainbot model register JOB [vN] [--group NAME]" in out
    assert "trainbot model approve GROUP vN" in out and "trainbot models [GROUP]" in out
    for words in (("model", "register", "--help"), ("help", "model", "register"),
                  ("models", "-h")):
        shown = trainbot(env, *words).stdout
        assert shown.startswith("usage: trainbot model"), words
