"""The generated CloudFormation says what the issue asks: the schema's tables, the event rule,
the schedule, the HTTP route, a private bucket, settings the bot understands, and IAM scoped
to exact resources."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

from bot.adapters.dynamodb_schema import (
    cloudformation_resource,
    idempotency_cloudformation_resource,
)
from bot.config import Settings
from bot.slack.settings import SlackSettings
from functions.lost_commands import QUEUE_VARIABLE
from functions.runtime import SECRET_PARAMS
from functions.secrets import EXTENSION_PORT_VARIABLE
from tests.deploy.conftest import STAGE, Packaged
from tests.deploy.infra_fragments import DYNAMODB_FRAGMENT, rendered_text

FUNCTIONS = ("SlackEvents", "JobEvents", "Reconcile")
ROLES = tuple(f"{f}Role" for f in FUNCTIONS)
SHARED_POLICIES = ("StorePolicy", "ComputePolicy", "SlackBotTokenPolicy",
                   "SlackSigningSecretPolicy")
# Actions AWS offers no resource-level permission for (or, for ECR login, account-wide).
ANY_RESOURCE_OK = {"xray:PutTraceSegments", "xray:PutTelemetryRecords",
                   "sagemaker:ListModelPackages",
                   "ecr:GetAuthorizationToken", "cloudwatch:PutMetricData"}


def _statements(resource: dict[str, Any]) -> Iterator[dict[str, Any]]:
    props = resource["Properties"]
    if "PolicyDocument" in props:
        yield from props["PolicyDocument"]["Statement"]
    for policy in props.get("Policies", []):
        yield from policy["PolicyDocument"]["Statement"]


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _allowed(packaged: Packaged, names: tuple[str, ...]) -> list[dict[str, Any]]:
    return [s for name in names for s in _statements(packaged.resources[name])
            if s["Effect"] == "Allow"]


def _role_statements(packaged: Packaged, role: str) -> list[dict[str, Any]]:
    """A role's own statements plus those of the managed policies it attaches."""
    props = packaged.resources[role]["Properties"]
    attached = tuple(ref["Ref"] for ref in props.get("ManagedPolicyArns", []))
    return _allowed(packaged, (role, *attached))


def _actions(statements: list[dict[str, Any]]) -> set[str]:
    return {a for s in statements for a in _listed(s["Action"])}


# -- tables ----------------------------------------------------------------------------------

def test_the_tables_are_the_schemas(packaged: Packaged) -> None:
    jobs = packaged.resources["JobsTable"]
    assert jobs["Properties"] == cloudformation_resource(f"trainbot-{STAGE}")
    assert jobs["DeletionPolicy"] == jobs["UpdateReplacePolicy"] == "Retain"
    assert jobs["Properties"]["PointInTimeRecoverySpecification"] == {
        "PointInTimeRecoveryEnabled": True}
    assert jobs["Properties"]["SSESpecification"] == {"SSEEnabled": True}
    assert len(jobs["Properties"]["GlobalSecondaryIndexes"]) == 5
    idem = packaged.resources["IdempotencyTable"]["Properties"]
    assert idem == idempotency_cloudformation_resource(f"trainbot-{STAGE}-idempotency")
    assert idem["TimeToLiveSpecification"] == {"AttributeName": "expiration", "Enabled": True}


def test_the_committed_table_fragment_is_rendered_from_the_schema() -> None:
    assert DYNAMODB_FRAGMENT.read_text() == rendered_text(), (
        "infra/dynamodb.json drifted from bot/adapters/dynamodb_schema.py; regenerate it: "
        ".venv/bin/python -m tests.deploy.infra_fragments")


# -- events ----------------------------------------------------------------------------------

def test_the_rule_sends_trainbots_sagemaker_state_changes_to_job_events(
        packaged: Packaged) -> None:
    [rule] = [r for r in packaged.resources.values() if r["Type"] == "AWS::Events::Rule"
              and "EventPattern" in r["Properties"]
              and r["Properties"]["EventPattern"]["detail-type"]
              == ["SageMaker Training Job State Change"]]
    assert rule["Properties"]["EventPattern"] == {
        "source": ["aws.sagemaker"],
        "detail-type": ["SageMaker Training Job State Change"],
        "detail": {"TrainingJobName": [{"prefix": "trainbot-"}]},
    }
    [target] = rule["Properties"]["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": ["JobEventsLambdaFunction", "Arn"]}


def test_reconcile_runs_every_five_minutes(packaged: Packaged) -> None:
    [schedule] = [r for r in packaged.resources.values() if r["Type"] == "AWS::Events::Rule"
                  and "ScheduleExpression" in r["Properties"]]
    assert schedule["Properties"]["ScheduleExpression"] == "rate(5 minutes)"
    [target] = schedule["Properties"]["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": ["ReconcileLambdaFunction", "Arn"]}


def test_slack_posts_to_the_slack_function(packaged: Packaged) -> None:
    route = packaged.resources["HttpApiRoutePostSlackEvents"]["Properties"]
    assert route["RouteKey"] == "POST /slack/events"
    integration = packaged.resources["HttpApiIntegrationSlackEvents"]["Properties"]
    assert integration["PayloadFormatVersion"] == "2.0"
    assert "SlackRequestUrl" in packaged.template["Outputs"]


# -- settings --------------------------------------------------------------------------------

def test_every_variable_is_one_the_bot_reads(packaged: Packaged) -> None:
    """Settings ignore unknown variables, so a misspelt one would silently do nothing."""
    slack_vars = set(SECRET_PARAMS.values()) | {
        f"SLACK_{f.name.upper()}" for f in dataclasses.fields(SlackSettings)}
    for fn in FUNCTIONS:
        env = packaged.resources[f"{fn}LambdaFunction"]["Properties"]["Environment"]["Variables"]
        for name in env:
            if name.startswith("TRAINBOT_"):
                assert name.removeprefix("TRAINBOT_").lower() in Settings.model_fields, name
            elif name.startswith("SLACK_"):
                assert name in slack_vars, name
            elif name not in (EXTENSION_PORT_VARIABLE, QUEUE_VARIABLE):
                assert name.startswith("POWERTOOLS_"), name
        plain = {k: v for k, v in env.items() if isinstance(v, str) and k.startswith("TRAINBOT_")}
        settings = Settings(**{k.removeprefix("TRAINBOT_").lower(): v for k, v in plain.items()})
        assert settings.store == "dynamodb" and settings.compute == "sagemaker"
        assert {"TRAINBOT_TABLE", "TRAINBOT_IDEMPOTENCY_TABLE", "TRAINBOT_BUCKET",
                "TRAINBOT_SAGEMAKER_ROLE_ARN", "SLACK_BOT_TOKEN_PARAM"} <= set(env)
        # Only the Slack function verifies requests: only it is told where the secret is.
        assert ("SLACK_SIGNING_SECRET_PARAM" in env) == (fn == "SlackEvents"), fn
        assert "SLACK_BOT_TOKEN" not in env and "SLACK_SIGNING_SECRET" not in env


# -- the bucket ------------------------------------------------------------------------------

def test_the_bucket_is_encrypted_private_and_tls_only(packaged: Packaged) -> None:
    bucket = packaged.resources["ArtifactsBucket"]["Properties"]
    [rule] = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("AES256", "aws:kms")
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    assert len(bucket["PublicAccessBlockConfiguration"]) == 4
    [deny] = _statements(packaged.resources["ArtifactsBucketPolicy"])
    assert deny["Effect"] == "Deny"
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


# -- IAM -------------------------------------------------------------------------------------

def test_no_wildcard_actions_and_star_resources_only_where_aws_has_no_other(
        packaged: Packaged) -> None:
    names = (*ROLES, *SHARED_POLICIES, "SageMakerExecutionRole")
    for statement in _allowed(packaged, names):
        actions = _listed(statement["Action"])
        assert not [a for a in actions if a == "*" or a.endswith(":*")], statement
        if "*" in _listed(statement["Resource"]):
            assert set(actions) <= ANY_RESOURCE_OK, statement


def test_each_function_role_has_its_own_logs_and_nothing_of_the_others(
        packaged: Packaged) -> None:
    for fn in FUNCTIONS:
        logs = [s for s in _allowed(packaged, (f"{fn}Role",)) if s["Sid"] == "OwnLogs"]
        [resource] = [r["Fn::Sub"] for s in logs for r in _listed(s["Resource"])]
        first = fn[0].lower() + fn[1:]
        assert resource.endswith(f":log-group:/aws/lambda/trainbot-{STAGE}-{first}:*")
    assert "lambda:InvokeFunction" in _actions(_role_statements(packaged, "SlackEventsRole"))
    for role in ("JobEventsRole", "ReconcileRole"):
        assert "lambda:InvokeFunction" not in _actions(_role_statements(packaged, role))
    idempotency = {"Fn::GetAtt": ["IdempotencyTable", "Arn"]}
    holders = [role for role in ROLES for s in _role_statements(packaged, role)
               if idempotency in _listed(s["Resource"])]
    assert holders == ["JobEventsRole"]


def test_the_slack_function_may_invoke_only_itself(packaged: Packaged) -> None:
    [invoke] = [s for s in _role_statements(packaged, "SlackEventsRole")
                if "lambda:InvokeFunction" in _listed(s["Action"])]
    assert _listed(invoke["Action"]) == ["lambda:InvokeFunction"]
    [arn] = _listed(invoke["Resource"])
    assert arn["Fn::Sub"].endswith(f":function:trainbot-{STAGE}-slackEvents")
    function = packaged.resources["SlackEventsLambdaFunction"]["Properties"]
    assert function["FunctionName"] == f"trainbot-{STAGE}-slackEvents"


def test_dynamodb_access_is_the_table_and_its_indexes(packaged: Packaged) -> None:
    [store] = _allowed(packaged, ("StorePolicy",))
    assert store["Resource"] == [{"Fn::GetAtt": ["JobsTable", "Arn"]},
                                 {"Fn::Sub": "${JobsTable.Arn}/index/*"}]
    assert "dynamodb:Scan" not in _listed(store["Action"])
    assert "dynamodb:TransactWriteItems" not in _listed(store["Action"])  # not an IAM action


def test_sagemaker_access_is_trainbots_training_jobs_and_its_role(packaged: Packaged) -> None:
    statements = _allowed(packaged, ("ComputePolicy",))
    [jobs] = [s for s in statements if s["Sid"] == "TrainingJobs"]
    assert set(jobs["Action"]) == {"sagemaker:CreateTrainingJob", "sagemaker:DescribeTrainingJob",
                                   "sagemaker:StopTrainingJob", "sagemaker:AddTags"}
    assert jobs["Resource"]["Fn::Sub"].endswith(":training-job/trainbot-*")
    [pass_role] = [s for s in statements if "iam:PassRole" in _listed(s["Action"])]
    assert pass_role["Resource"] == {"Fn::GetAtt": ["SageMakerExecutionRole", "Arn"]}
    assert pass_role["Condition"] == {
        "StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}
    [objects] = [s for s in statements if s["Action"] == "s3:GetObject"]
    assert [r["Fn::Sub"] for r in objects["Resource"]] == [
        "${ArtifactsBucket.Arn}/trainbot/catalog.json", "${ArtifactsBucket.Arn}/trainbot/output/*"]
    [logs] = [s for s in statements if "logs:GetLogEvents" in _listed(s["Action"])]
    assert all(":log-group:/aws/sagemaker/TrainingJobs:" in r["Fn::Sub"]
               for r in logs["Resource"])


MODEL_REGISTRY_ACTIONS = {
    "sagemaker:CreateModelPackageGroup", "sagemaker:DescribeModelPackageGroup",
    "sagemaker:CreateModelPackage", "sagemaker:DescribeModelPackage",
    "sagemaker:ListModelPackages", "sagemaker:UpdateModelPackage",
}


def test_only_the_slack_function_registers_models_and_only_trainbots(
        packaged: Packaged) -> None:
    """Models are registered and decided in Slack: the other functions may not touch the
    Model Registry. Groups are ``trainbot-<group>``; a package's ARN is
    ``model-package/<group>/<n>``."""
    for role in ("JobEventsRole", "ReconcileRole"):
        assert not _actions(_role_statements(packaged, role)) & MODEL_REGISTRY_ACTIONS, role
    registry = [s for s in _role_statements(packaged, "SlackEventsRole")
                if set(_listed(s["Action"])) & MODEL_REGISTRY_ACTIONS]
    granted = {s["Sid"]: (set(_listed(s["Action"])), [r["Fn::Sub"] if isinstance(r, dict)
                                                      else r for r in _listed(s["Resource"])])
               for s in registry}
    assert granted.keys() == {"ModelRegistryGroups", "ModelRegistryPackages", "ModelRegistryList"}
    assert granted["ModelRegistryList"] == ({"sagemaker:ListModelPackages"}, ["*"])
    actions, [groups] = granted["ModelRegistryGroups"]
    assert actions == {"sagemaker:CreateModelPackageGroup", "sagemaker:DescribeModelPackageGroup"}
    assert groups.endswith(":model-package-group/trainbot-*")
    actions, [packages] = granted["ModelRegistryPackages"]
    assert actions == (MODEL_REGISTRY_ACTIONS - granted["ModelRegistryGroups"][0]
                       - {"sagemaker:ListModelPackages"})
    assert packages.endswith(":model-package/trainbot-*/*")
    # No tags on groups or packages: AddTags stays scoped to training jobs.
    assert all("sagemaker:AddTags" not in _listed(s["Action"]) for s in registry)


def test_model_evaluations_are_written_by_the_slack_function_alone(packaged: Packaged) -> None:
    evaluations = "${ArtifactsBucket.Arn}/trainbot/models/*"
    writers = {role for role in ROLES for s in _role_statements(packaged, role)
               if {"Fn::Sub": evaluations} in _listed(s["Resource"])}
    assert writers == {"SlackEventsRole"}
    [write] = [s for s in _role_statements(packaged, "SlackEventsRole")
               if s.get("Sid") == "StoreModelEvaluations"]
    assert _listed(write["Action"]) == ["s3:PutObject"]
    assert [r["Fn::Sub"] for r in _listed(write["Resource"])] == [evaluations]


def test_slack_secrets_are_the_two_named_parameters(packaged: Packaged) -> None:
    read = {}
    for policy in ("SlackBotTokenPolicy", "SlackSigningSecretPolicy"):
        [params] = _allowed(packaged, (policy,))
        assert params["Action"] == "ssm:GetParameter"
        [resource] = [r["Fn::Sub"] for r in params["Resource"]]
        read[policy] = resource.rsplit(":parameter", 1)[1]
    assert read == {"SlackBotTokenPolicy": f"/trainbot/{STAGE}/slack-bot-token",
                    "SlackSigningSecretPolicy": f"/trainbot/{STAGE}/slack-signing-secret"}


def test_only_the_slack_function_can_read_the_signing_secret(packaged: Packaged) -> None:
    """The job-events and reconcile functions verify no Slack request (they post with the
    bot token alone), so their roles are not granted the signing secret."""
    granted = {role for role in ROLES if {"Ref": "SlackSigningSecretPolicy"} in
               packaged.resources[role]["Properties"].get("ManagedPolicyArns", [])}
    assert granted == {"SlackEventsRole"}
    for role in ROLES:
        sids = {s.get("Sid") for s in _role_statements(packaged, role)}
        assert ("SlackSigningSecret" in sids) == (role == "SlackEventsRole"), role
        assert "SlackBotToken" in sids, role


def test_training_jobs_run_as_a_role_only_sagemaker_assumes(packaged: Packaged) -> None:
    role = packaged.resources["SageMakerExecutionRole"]["Properties"]
    [trust] = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "sagemaker.amazonaws.com"}
    writes = [s for s in _statements(packaged.resources["SageMakerExecutionRole"])
              if "s3:PutObject" in _listed(s["Action"])]
    [write] = writes
    assert all("/trainbot/" in r["Fn::Sub"] for r in write["Resource"])


def test_functions_read_secrets_through_the_extension_layer(packaged: Packaged) -> None:
    """The layer and the port variable go together: the port alone would make every cold
    start wait for an extension that isn't there before falling back to the SDK."""
    for fn in FUNCTIONS:
        props = packaged.resources[f"{fn}LambdaFunction"]["Properties"]
        layers = props.get("Layers", [])
        assert any(":layer:AWS-Parameters-and-Secrets-Lambda-Extension:" in str(layer)
                   for layer in layers), (fn, layers)
        assert props["Environment"]["Variables"][EXTENSION_PORT_VARIABLE] == "2773"


# -- lost commands ---------------------------------------------------------------------------

def test_lazy_reinvocations_that_never_run_go_to_the_lost_commands_queue(
        packaged: Packaged) -> None:
    [config] = [r["Properties"] for r in packaged.resources.values()
                if r["Type"] == "AWS::Lambda::EventInvokeConfig"]
    assert config["FunctionName"] == {"Ref": "SlackEventsLambdaFunction"}
    assert config["MaximumEventAgeInSeconds"] == 1800  # response_url's lifetime
    assert config["MaximumRetryAttempts"] == 2
    assert config["DestinationConfig"] == {
        "OnFailure": {"Destination": {"Fn::GetAtt": ["LostCommandsQueue", "Arn"]}}}
    queue = packaged.resources["LostCommandsQueue"]["Properties"]
    assert queue["SqsManagedSseEnabled"] is True
    assert queue["MessageRetentionPeriod"] == 1209600
    assert queue["VisibilityTimeout"] > packaged.resources[
        "ReconcileLambdaFunction"]["Properties"]["Timeout"]
    env = packaged.resources["ReconcileLambdaFunction"]["Properties"]["Environment"]["Variables"]
    assert env[QUEUE_VARIABLE] == {"Ref": "LostCommandsQueue"}
    for fn in ("SlackEvents", "JobEvents"):
        props = packaged.resources[f"{fn}LambdaFunction"]["Properties"]
        assert QUEUE_VARIABLE not in props["Environment"]["Variables"]


def test_only_the_slack_function_sends_and_only_the_reconcile_reads_lost_commands(
        packaged: Packaged) -> None:
    queue = {"Fn::GetAtt": ["LostCommandsQueue", "Arn"]}
    granted: dict[str, set[str]] = {}
    for role in ROLES:
        for statement in _role_statements(packaged, role):
            actions = {a for a in _listed(statement["Action"]) if a.startswith("sqs:")}
            if actions:
                assert _listed(statement["Resource"]) == [queue], (role, statement)
                granted.setdefault(role, set()).update(actions)
    assert granted == {"SlackEventsRole": {"sqs:SendMessage"},
                       "ReconcileRole": {"sqs:ReceiveMessage", "sqs:DeleteMessage"}}
