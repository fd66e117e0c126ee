"""Sweeps on SageMaker in the generated CloudFormation: the tuning job's EventBridge rule, and
IAM that lets the Slack function begin and stop trainbot's tuning jobs, the reconcile read
them, and nothing else touch them."""

from __future__ import annotations

import json
from typing import Any

from bot.domain.naming import tuning_job_name
from tests.deploy.conftest import Packaged
from tests.deploy.test_template import ROLES, _actions, _listed, _role_statements

TUNING_ACTIONS = {
    "sagemaker:CreateHyperParameterTuningJob", "sagemaker:DescribeHyperParameterTuningJob",
    "sagemaker:StopHyperParameterTuningJob",
    "sagemaker:ListTrainingJobsForHyperParameterTuningJob",
}
READ_ACTIONS = {"sagemaker:DescribeHyperParameterTuningJob",
                "sagemaker:ListTrainingJobsForHyperParameterTuningJob"}
TUNING_ARN = ":hyper-parameter-tuning-job/trainbot-*"


def _rules(packaged: Packaged) -> dict[str, dict[str, Any]]:
    return {name: r["Properties"] for name, r in packaged.resources.items()
            if r["Type"] == "AWS::Events::Rule" and "EventPattern" in r["Properties"]}


def _tuning_statements(packaged: Packaged, role: str) -> list[dict[str, Any]]:
    return [s for s in _role_statements(packaged, role)
            if set(_listed(s["Action"])) & TUNING_ACTIONS]


def test_the_tuning_rule_sends_trainbots_tuning_jobs_to_job_events(packaged: Packaged) -> None:
    rules = _rules(packaged)
    tuning = {name: r for name, r in rules.items()
              if r["EventPattern"]["detail-type"]
              == ["SageMaker HyperParameter Tuning Job State Change"]}
    [(name, rule)] = tuning.items()
    assert rule["EventPattern"] == {
        "source": ["aws.sagemaker"],
        "detail-type": ["SageMaker HyperParameter Tuning Job State Change"],
        "detail": {"HyperParameterTuningJobName": [{"prefix": "trainbot-"}]},
    }
    assert rule.get("State", "ENABLED") == "ENABLED"
    [target] = rule["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": ["JobEventsLambdaFunction", "Arn"]}
    # EventBridge may invoke the function for this rule.
    permissions = [r["Properties"] for r in packaged.resources.values()
                   if r["Type"] == "AWS::Lambda::Permission"
                   and r["Properties"].get("Principal") == "events.amazonaws.com"]
    # (serverless builds the rule's ARN from its name: arn:…:events:…:rule/<name>)
    source_arns = [json.dumps(p["SourceArn"]) for p in permissions
                   if p["FunctionName"] == {"Fn::GetAtt": ["JobEventsLambdaFunction", "Arn"]}]
    assert any(f'"rule", "{rule["Name"]}"' in arn or f'"{name}", "Arn"' in arn
               for arn in source_arns), source_arns
    # Two rules on sagemaker state changes in all: training jobs (trials too) and tuning jobs.
    assert sorted(r["EventPattern"]["detail-type"][0] for r in rules.values()) == [
        "SageMaker HyperParameter Tuning Job State Change",
        "SageMaker Training Job State Change"]


def test_a_tuning_jobs_trials_fall_under_the_training_rule_and_its_iam_scope() -> None:
    """SageMaker names a trial ``<tuning job name>-NNN-xxxxxxxx``: with the tuning job named by
    :func:`tuning_job_name`, the trial matches the training rule's ``trainbot-`` prefix and
    ComputePolicy's ``training-job/trainbot-*``, and fits SageMaker's 63 characters."""
    name = tuning_job_name("trainbot", "a-rather-long-sweep-name-for-churn", "9f3a")
    trial = f"{name}-001-0123abcd"
    assert name.startswith("trainbot-") and len(name) <= 32
    assert trial.startswith("trainbot-") and len(trial) <= 63


def test_only_the_slack_function_begins_tuning_jobs(packaged: Packaged) -> None:
    [grant] = _tuning_statements(packaged, "SlackEventsRole")
    assert set(_listed(grant["Action"])) == TUNING_ACTIONS | {"sagemaker:AddTags"}
    [resource] = _listed(grant["Resource"])
    assert resource["Fn::Sub"].endswith(TUNING_ARN)
    assert resource["Fn::Sub"].startswith("arn:${AWS::Partition}:sagemaker:${AWS::Region}:")
    for role in ROLES:
        actions = _actions(_tuning_statements(packaged, role))
        starts = {"sagemaker:CreateHyperParameterTuningJob"} & actions
        assert bool(starts) == (role == "SlackEventsRole"), (role, actions)


def test_the_reconcile_reads_and_stops_tuning_jobs_and_job_events_only_reads(
        packaged: Packaged) -> None:
    """The reconcile repairs a sweep (reads it; asks again for a stop SageMaker may not
    have taken); job events read a tuning job's trials before its sweep ends."""
    [repair] = _tuning_statements(packaged, "ReconcileRole")
    assert set(_listed(repair["Action"])) == READ_ACTIONS | {
        "sagemaker:StopHyperParameterTuningJob"}
    [read] = _tuning_statements(packaged, "JobEventsRole")
    assert set(_listed(read["Action"])) == READ_ACTIONS
    for grant in (repair, read):
        [resource] = _listed(grant["Resource"])
        assert resource["Fn::Sub"].endswith(TUNING_ARN)


def test_the_slack_function_passes_the_execution_role_to_sagemaker_only(
        packaged: Packaged) -> None:
    """A tuning job's trials run as the execution role the training jobs run as: the same
    PassRole, limited to sagemaker.amazonaws.com, covers it."""
    [pass_role] = [s for s in _role_statements(packaged, "SlackEventsRole")
                   if "iam:PassRole" in _listed(s["Action"])]
    assert pass_role["Resource"] == {"Fn::GetAtt": ["SageMakerExecutionRole", "Arn"]}
    assert pass_role["Condition"] == {
        "StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}


def test_tuning_job_grants_never_reach_beyond_trainbots_tuning_jobs(packaged: Packaged) -> None:
    for role in ROLES:
        for statement in _tuning_statements(packaged, role):
            for resource in _listed(statement["Resource"]):
                assert isinstance(resource, dict), (role, statement)
                assert resource["Fn::Sub"].endswith(TUNING_ARN), (role, statement)
