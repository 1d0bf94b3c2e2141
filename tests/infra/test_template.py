"""template.yaml: cfn-lint finds nothing, and the pipeline's invariants hold in the
template CloudFormation will deploy, after the SAM transform (samtranslator, offline)."""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import (
    AmazonCloudWatchEMFProvider,
)
from cfnlint.api import lint_file
from cfnlint.decode import decode
from samtranslator.translator.transform import transform

from qomon_sync.domain.change_event import ChangeEvent
from qomon_sync.settings import QOMON_EU_URL, QOMON_US_URL, Settings
from tests.conftest import EVENTS, ROOT, load_event

TEMPLATE = ROOT / "template.yaml"
FUNCTIONS = ROOT / "functions"

CUSTOM_METRICS = {
    "EventsReceived",
    "ContactsReplaced",
    "ContactsCreated",
    "ContactsUnchanged",
    "EventsDeadLettered",
    "EventsDuplicate",
    "QomonTokensSpent",
    "QomonCalls",
    "QomonRateLimited",
    "QomonLatency",
    "Webhooks202",
    "Webhooks401",
    "Webhooks503",
    "EventsEnqueued",
    "SpacePaused",
    "PauseProbes",
}
ALARMS = {
    "DeadLetterQueueNotEmptyAlarm",
    "OldestChangeAgeAlarm",
    "SyncErrorsAlarm",
    "SyncThrottlesAlarm",
    "QomonRateLimitedAlarm",
    "WebhooksRefusedAlarm",
    "WebhooksAnswered5xxAlarm",
    "IngestErrorsAlarm",
    "SpacePausedAlarm",
    "SpacePausedTooLongAlarm",
    "PauseProbeErrorsAlarm",
}
OUTPUTS = {
    "PseudonymKeySecretArn",
    "ChangesQueueUrl",
    "ChangesQueueArn",
    "DeadLetterQueueUrl",
    "DeadLetterQueueArn",
    "IdempotencyTableName",
    "StagingTableName",
    "QomonApiKeySecretArn",
    "DashboardUrl",
    "AlarmTopicArn",
    "WebhookUrl",
    "WebhookSecretsArn",
    "PauseProbeFunctionName",
}
LOG_RETENTION_DAYS = [1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096]
LOG_RETENTION_DAYS += [1827, 2192, 2557, 2922, 3288, 3653]

# Every permission the sync function holds, and the one resource it holds it on. X-Ray has
# no resource-level permissions for PutTraceSegments and PutTelemetryRecords: "*" is the
# only Resource AWS accepts for them, and the only "*" allowed here.
INGEST_GRANTS = {
    "logs:CreateLogStream": "IngestFunctionLogGroup",
    "logs:PutLogEvents": "IngestFunctionLogGroup",
    "sqs:SendMessage": "ChangesQueue",
    "secretsmanager:GetSecretValue": "PseudonymKeySecret + WebhookSecrets",
    "xray:PutTraceSegments": "*",
    "xray:PutTelemetryRecords": "*",
}
SYNC_GRANTS = {
    "logs:CreateLogStream": "SyncFunctionLogGroup",
    "logs:PutLogEvents": "SyncFunctionLogGroup",
    "sqs:ReceiveMessage": "ChangesQueue",
    "sqs:DeleteMessage": "ChangesQueue",
    "sqs:GetQueueAttributes": "ChangesQueue",
    "sqs:ChangeMessageVisibility": "ChangesQueue",
    "sqs:SendMessage": "ChangesQueue + DeadLetterQueue",
    "dynamodb:GetItem": "IdempotencyTable + StagingTable",
    "dynamodb:PutItem": "IdempotencyTable + StagingTable",
    "dynamodb:UpdateItem": "IdempotencyTable + StagingTable",
    "dynamodb:DeleteItem": "IdempotencyTable + StagingTable",
    "dynamodb:BatchGetItem": "IdempotencyTable + StagingTable",
    "dynamodb:BatchWriteItem": "IdempotencyTable + StagingTable",
    "dynamodb:Query": "StagingTable",
    "secretsmanager:GetSecretValue": "PseudonymKeySecret + QomonApiKeySecret",
    "xray:PutTraceSegments": "*",
    "xray:PutTelemetryRecords": "*",
}


MAPPING_ARN = (
    "arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:event-source-mapping:"
    "${SyncFunctionChanges}"
)
PROBE_GRANTS = {
    "logs:CreateLogStream": "PauseProbeFunctionLogGroup",
    "logs:PutLogEvents": "PauseProbeFunctionLogGroup",
    "dynamodb:GetItem": "StagingTable",
    "dynamodb:UpdateItem": "StagingTable",
    "dynamodb:DeleteItem": "StagingTable",
    "dynamodb:Scan": "StagingTable",
    "secretsmanager:GetSecretValue": "QomonApiKeySecret",
    "sqs:GetQueueAttributes": "ChangesQueue",
    "sqs:SendMessage": "ChangesQueue",
    "lambda:GetEventSourceMapping": "SyncFunctionChanges",
    "lambda:UpdateEventSourceMapping": "SyncFunctionChanges",
    "sns:Publish": "AlarmTopic",
    "kms:Decrypt": "AlarmTopicKey",
    "kms:GenerateDataKey": "AlarmTopicKey",
}


class _NoManagedPolicies:
    """samtranslator's managed-policy loader asks IAM for the AWS managed policies' ARNs.
    The template attaches none, so the lookup must never be needed."""

    def load(self) -> dict[str, str]:
        return {}


@pytest.fixture(scope="module")
def source() -> dict[str, Any]:
    """template.yaml as written, short-form tags (!Ref, !Sub, !GetAtt) decoded."""
    template, problems = decode(str(TEMPLATE))
    assert problems == [], [str(problem) for problem in problems]
    assert template is not None
    plain: dict[str, Any] = json.loads(json.dumps(template))
    return plain


@pytest.fixture(scope="module")
def cfn(source: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The template after the SAM transform, as CloudFormation receives it."""
    fragment = json.loads(json.dumps(source))
    for resource in fragment["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Function":
            # `sam build` and `sam package` replace the local folder with the S3 upload.
            resource["Properties"]["CodeUri"] = "s3://bucket/bundle.zip"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_DEFAULT_REGION", "eu-west-3")  # read by the pseudo parameters
        yield transform(fragment, {}, _NoManagedPolicies())


def resources(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {
        name: resource
        for name, resource in template["Resources"].items()
        if resource["Type"] == kind
    }


def props(template: dict[str, Any], name: str) -> dict[str, Any]:
    properties: dict[str, Any] = template["Resources"][name]["Properties"]
    return properties


def target(value: Any) -> str:
    """The logical id a Ref or GetAtt points at, or a literal "*"."""
    if value == "*":
        return "*"
    if isinstance(value, dict) and set(value) == {"Ref"}:
        return str(value["Ref"])
    if isinstance(value, dict) and set(value) == {"Fn::GetAtt"}:
        return str(value["Fn::GetAtt"][0])
    raise AssertionError(f"not a reference to one resource of this stack: {value!r}")


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def sub(text: str, values: dict[str, str]) -> str:
    """Resolve Fn::Sub's ${Name} and ${Name.Attr}; ${!Literal} stays as ${Literal}."""

    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        if name.startswith("!"):
            return "${" + name[1:] + "}"
        return values.get(name, f"resolved-{name.replace('::', '-').replace('.', '-')}")

    return re.sub(r"\$\{([^}]+)\}", one, text)


# -- lint ------------------------------------------------------------------------------


def test_cfn_lint_reports_nothing() -> None:
    assert [str(match) for match in lint_file(TEMPLATE)] == []


def test_the_console_shows_every_parameter_once_in_a_group_with_a_label(
    cfn: dict[str, Any],
) -> None:
    interface = cfn["Metadata"]["AWS::CloudFormation::Interface"]
    grouped = [name for group in interface["ParameterGroups"] for name in group["Parameters"]]
    assert sorted(grouped) == sorted(cfn["Parameters"]), "each parameter in exactly one group"
    for group in interface["ParameterGroups"]:
        assert group["Label"]["default"], group
    labels = interface["ParameterLabels"]
    assert set(labels) == set(cfn["Parameters"])
    for name, label in labels.items():
        assert 0 < len(label["default"]) <= 60, name


# -- static checks ---------------------------------------------------------------------


def test_every_checkov_skip_is_explained_in_the_docs_and_ci_runs_checkov() -> None:
    config = yaml.safe_load((ROOT / ".checkov.yaml").read_text(encoding="utf-8"))
    assert config["framework"] == ["cloudformation"]
    assert config["file"] == ["template.yaml"]
    assert config["skip-download"] is True  # offline: nothing from Prisma Cloud
    skipped = config["skip-check"]
    assert len(skipped) == len(set(skipped))
    page = (ROOT / "docs" / "deploying.md").read_text(encoding="utf-8")
    section = page.split("## Security checks", 1)[1].split("\n## ", 1)[0]
    explained = dict(re.findall(r"^\| `(CKV\w+)` \| [^|]+ \| ([^|]+) \|$", section, re.MULTILINE))
    assert set(explained) == set(skipped), (
        "each skip has a row in docs/deploying.md, and only those"
    )
    for check, why in explained.items():
        assert len(why.split()) >= 12, f"{check}: say why it does not apply"
    # Fixed, never skipped: the HTTP API's access log.
    assert "CKV_AWS_95" not in skipped
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    # Pinned, in a venv of its own (its dependencies must not move the dev pins).
    assert re.search(r"^CHECKOV_VERSION := \d+\.\d+\.\d+$", makefile, re.MULTILINE)
    assert "checkov==$(CHECKOV_VERSION)" in makefile
    assert "--config-file .checkov.yaml" in makefile
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert re.search(r"^make checkov\b", ci, re.MULTILINE)


def test_sam_validate_lint_runs_offline_in_ci() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    [recipe] = re.findall(r"^validate: .*\n\t(.+)$", makefile, re.MULTILINE)
    assert "sam validate --lint --template template.yaml --region eu-west-3" in recipe
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert re.search(r"^make validate\b", ci, re.MULTILINE)


# -- queues ----------------------------------------------------------------------------


def test_changes_queue_is_fifo_encrypted_and_redrives_to_the_dead_letter_queue(
    cfn: dict[str, Any],
) -> None:
    queue = props(cfn, "ChangesQueue")
    assert queue["FifoQueue"] is True
    assert queue["ContentBasedDeduplication"] is False
    assert queue["DeduplicationScope"] == "messageGroup"
    assert queue["FifoThroughputLimit"] == "perMessageGroupId"
    assert queue["SqsManagedSseEnabled"] is True
    assert queue["MessageRetentionPeriod"] == 4 * 24 * 3600
    assert target(queue["RedrivePolicy"]["deadLetterTargetArn"]) == "DeadLetterQueue"
    assert queue["RedrivePolicy"]["maxReceiveCount"] == 5


def test_dead_letter_queue_is_fifo_encrypted_kept_14_days_and_redrivable(
    cfn: dict[str, Any],
) -> None:
    dlq = props(cfn, "DeadLetterQueue")
    assert dlq["FifoQueue"] is True
    assert dlq["SqsManagedSseEnabled"] is True
    assert dlq["MessageRetentionPeriod"] == 1209600
    allow = dlq["RedriveAllowPolicy"]
    assert allow["redrivePermission"] == "byQueue"
    # The changes queue's ARN is spelled out (a GetAtt would be a circular reference):
    # it must name the queue the changes queue is actually called.
    [source_arn] = allow["sourceQueueArns"]
    changes_name = props(cfn, "ChangesQueue")["QueueName"]["Fn::Sub"]
    assert changes_name.endswith(".fifo")
    assert source_arn["Fn::Sub"] == (
        "arn:${AWS::Partition}:sqs:${AWS::Region}:${AWS::AccountId}:" + changes_name
    )


def test_visibility_timeout_is_at_least_six_times_the_function_timeout(
    cfn: dict[str, Any],
) -> None:
    timeout = props(cfn, "SyncFunction")["Timeout"]
    assert timeout == 60
    assert props(cfn, "ChangesQueue")["VisibilityTimeout"] >= 6 * timeout


def test_the_event_source_mapping_reads_fifo_batches_with_partial_failures(
    cfn: dict[str, Any],
) -> None:
    [mapping] = resources(cfn, "AWS::Lambda::EventSourceMapping").values()
    spec = mapping["Properties"]
    assert target(spec["EventSourceArn"]) == "ChangesQueue"
    assert target(spec["FunctionName"]) == "SyncFunction"
    assert spec["BatchSize"] == 10
    assert spec["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert spec["ScalingConfig"] == {"MaximumConcurrency": {"Ref": "SyncMaximumConcurrency"}}
    # Lambda refuses a batching window on FIFO queues.
    assert "MaximumBatchingWindowInSeconds" not in spec
    concurrency = cfn["Parameters"]["SyncMaximumConcurrency"]
    assert concurrency["Type"] == "Number"
    assert concurrency["Default"] == 2
    assert concurrency["MinValue"] == 2


# -- function --------------------------------------------------------------------------


def test_sync_function_runs_python_3_13_on_arm64_with_tracing(cfn: dict[str, Any]) -> None:
    function = props(cfn, "SyncFunction")
    assert function["Runtime"] == "python3.13"
    assert function["Architectures"] == ["arm64"]
    assert function["MemorySize"] == 512
    assert function["TracingConfig"] == {"Mode": "Active"}
    assert cfn["Resources"]["SyncFunction"]["Metadata"] == {"BuildMethod": "makefile"}


def test_handler_names_a_function_defined_in_the_bundle(source: dict[str, Any]) -> None:
    function = props(source, "SyncFunction")
    code = ROOT / function["CodeUri"]
    module, _, name = function["Handler"].rpartition(".")
    path = code.joinpath(*module.split(".")).with_suffix(".py")
    assert path.is_file(), f"{function['Handler']}: no {path.relative_to(ROOT)}"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    defined = {
        node.name for node in tree.body if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    } | {
        target.id
        for node in tree.body
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    assert name in defined


def test_every_makefile_built_function_has_a_build_target(cfn: dict[str, Any]) -> None:
    makefile = (FUNCTIONS / "Makefile").read_text(encoding="utf-8")
    targets = set(re.findall(r"^build-(\w+):", makefile, flags=re.MULTILINE))
    built = {
        name
        for name, resource in resources(cfn, "AWS::Lambda::Function").items()
        if resource.get("Metadata", {}).get("BuildMethod") == "makefile"
    }
    assert built == {"SyncFunction", "IngestFunction", "PauseProbeFunction"}
    assert built <= targets


def test_every_log_group_has_a_retention_and_every_function_logs_to_one(
    cfn: dict[str, Any],
) -> None:
    groups = resources(cfn, "AWS::Logs::LogGroup")
    for group in groups.values():
        assert group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    # A function without an explicit log group gets one that keeps logs forever.
    for function in resources(cfn, "AWS::Lambda::Function").values():
        assert target(function["Properties"]["LoggingConfig"]["LogGroup"]) in groups
    retention = cfn["Parameters"]["LogRetentionDays"]
    assert retention["Default"] == 30
    assert retention["AllowedValues"] == LOG_RETENTION_DAYS


def template_environment(cfn: dict[str, Any], function: str = "SyncFunction") -> dict[str, Any]:
    spec = resources(cfn, "AWS::Lambda::Function")[function]
    variables: dict[str, Any] = spec["Properties"]["Environment"]["Variables"]
    return variables


@pytest.mark.parametrize("function", ["SyncFunction", "IngestFunction", "PauseProbeFunction"])
def test_every_environment_variable_is_a_setting_or_powertools(
    cfn: dict[str, Any], function: str
) -> None:
    assert Settings.model_config.get("env_prefix", "") == ""
    settings = {name.upper() for name in Settings.model_fields}
    variables = template_environment(cfn, function)
    unknown = {
        name for name in variables if name not in settings and not name.startswith("POWERTOOLS_")
    }
    assert unknown == set()
    assert variables["POWERTOOLS_SERVICE_NAME"] == "qomon-sync"
    assert variables["POWERTOOLS_LOGGER_LOG_EVENT"] == "false"


def test_each_function_gets_the_settings_it_reads(cfn: dict[str, Any]) -> None:
    ingest = template_environment(cfn, "IngestFunction")
    assert set(ingest) >= {"CHANGES_QUEUE_URL", "WEBHOOK_SECRETS_SECRET"}
    assert ingest["WEBHOOK_SECRETS_SECRET"] == {"Ref": "WebhookSecrets"}
    assert ingest["CHANGES_QUEUE_URL"] == {"Ref": "ChangesQueue"}
    variables = template_environment(cfn)
    assert {
        "QOMON_BASE_URL",
        "QOMON_API_KEY_SECRET",
        "DEAD_LETTER_QUEUE_URL",
        "CHANGES_QUEUE_URL",
        "IDEMPOTENCY_TABLE",
        "STAGING_TABLE",
        "MAX_RECEIVE_COUNT",
        "DRY_RUN",
        "UNKNOWN_FIELDS_PASSTHROUGH",
    } <= set(variables)
    assert variables["POWERTOOLS_SERVICE_NAME"] == "qomon-sync"
    assert variables["POWERTOOLS_METRICS_NAMESPACE"] == "QomonSync"
    assert variables["POWERTOOLS_LOG_LEVEL"] == "INFO"
    assert variables["POWERTOOLS_LOGGER_LOG_EVENT"] == "false"


def test_the_deployed_environment_reads_as_settings_with_the_defaults(
    cfn: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    parameters = cfn["Parameters"]
    assert parameters["QomonBaseUrl"]["Default"] == QOMON_EU_URL
    assert set(parameters["QomonBaseUrl"]["AllowedValues"]) == {QOMON_EU_URL, QOMON_US_URL}
    assert parameters["DryRun"]["AllowedValues"] == ["true", "false"]
    for name, value in template_environment(cfn).items():
        deployed = value
        if isinstance(value, dict) and value.get("Ref") in parameters:
            deployed = parameters[value["Ref"]]["Default"]
        elif isinstance(value, dict):
            deployed = f"resolved-{target(value)}"
        monkeypatch.setenv(name, str(deployed))
    settings = Settings()
    assert str(settings.qomon_base_url).rstrip("/") == QOMON_EU_URL
    assert settings.dry_run is False
    default_passthrough = Settings.model_fields["unknown_fields_passthrough"].default
    assert settings.unknown_fields_passthrough == default_passthrough == {"address.citycode"}
    assert settings.qomon_api_key_secret == "resolved-QomonApiKeySecret"


# -- state and secret ------------------------------------------------------------------


def test_idempotency_table_is_on_demand_with_ttl_encryption_and_recovery(
    cfn: dict[str, Any],
) -> None:
    table = props(cfn, "IdempotencyTable")
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    assert table["AttributeDefinitions"] == [{"AttributeName": "id", "AttributeType": "S"}]
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expiration", "Enabled": True}
    assert table["SSESpecification"]["SSEEnabled"] is True
    assert table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert template_environment(cfn)["IDEMPOTENCY_TABLE"] == {"Ref": "IdempotencyTable"}


def test_staging_table_is_on_demand_with_ttl_encryption_and_recovery(
    cfn: dict[str, Any],
) -> None:
    """Staged events were deleted from the queue: the table is all that holds them."""
    table = props(cfn, "StagingTable")
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["KeySchema"] == [
        {"AttributeName": "pk", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ]
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert table["SSESpecification"]["SSEEnabled"] is True
    assert table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    variables = template_environment(cfn)
    assert variables["STAGING_TABLE"] == {"Ref": "StagingTable"}
    assert "StagingTable" in RETAINED


def test_the_sync_function_knows_the_queues_max_receive_count(cfn: dict[str, Any]) -> None:
    """On a flush's last delivery the staged events are dead-lettered with the reason,
    rather than moved by the redrive policy without one: the two counts must agree."""
    redrive = props(cfn, "ChangesQueue")["RedrivePolicy"]
    assert template_environment(cfn)["MAX_RECEIVE_COUNT"] == str(redrive["maxReceiveCount"])


def test_the_api_key_lives_only_in_the_secret(cfn: dict[str, Any]) -> None:
    secret = props(cfn, "QomonApiKeySecret")
    assert secret["Name"] == {"Fn::Sub": "${AWS::StackName}/qomon-api-key"}
    # CloudFormation needs a value: a placeholder the handler refuses, never a key.
    assert secret["SecretString"] == "REPLACE_ME"
    assert "REPLACE_ME" in secret["Description"]
    assert "GenerateSecretString" not in secret
    variables = template_environment(cfn)
    assert variables["QOMON_API_KEY_SECRET"] == {"Ref": "QomonApiKeySecret"}
    credential = re.compile(r"key|token|password|secret|credential", re.IGNORECASE)
    assert [name for name in cfn["Parameters"] if credential.search(name)] == []
    assert [name for name, spec in cfn["Parameters"].items() if spec.get("NoEcho")] == []
    secrets = {"QomonApiKeySecret", "WebhookSecrets", "PseudonymKeySecret"}
    for name, value in variables.items():
        if credential.search(name):
            assert target(value) in secrets, name


# Where data lives that a `sam delete` or a replacement must not destroy: the backlogs,
# the ledger, the secrets put in by hand, and the key (its deletion cannot be undone).
RETAINED = {
    "ChangesQueue",
    "DeadLetterQueue",
    "IdempotencyTable",
    "StagingTable",
    "QomonApiKeySecret",
    "WebhookSecrets",
    "PseudonymKeySecret",
    "AlarmTopicKey",
}


def test_data_outlives_the_stack_and_the_docs_say_how_to_remove_it(
    cfn: dict[str, Any],
) -> None:
    kept = {
        name
        for name, resource in cfn["Resources"].items()
        if resource.get("DeletionPolicy") in ("Retain", "RetainExceptOnCreate", "Snapshot")
    }
    assert kept == RETAINED
    for name in RETAINED:
        resource = cfn["Resources"][name]
        # Retain on delete but not on replacement would still lose the data on an update.
        assert resource["DeletionPolicy"] == resource["UpdateReplacePolicy"] == "Retain", name
    page = (ROOT / "docs" / "deploying.md").read_text(encoding="utf-8")
    section = page.split("## Deleting the stack", 1)[1].split("\n## ", 1)[0]
    assert "sam delete" in section
    for name in RETAINED:
        assert f"`{name}`" in section, (
            f"docs/deploying.md does not say {name} survives a sam delete"
        )
    for command in ("delete-queue", "delete-table", "delete-secret", "schedule-key-deletion"):
        assert command in section, command


# -- permissions -----------------------------------------------------------------------


def statements(policy: dict[str, Any]) -> list[dict[str, Any]]:
    return as_list(policy["PolicyDocument"]["Statement"])


def test_iam_grants_exactly_what_the_sync_function_needs_on_named_resources(
    cfn: dict[str, Any],
) -> None:
    assert resources(cfn, "AWS::IAM::Policy") == {}
    assert resources(cfn, "AWS::IAM::ManagedPolicy") == {}
    roles = resources(cfn, "AWS::IAM::Role")
    assert set(roles) == {"SyncFunctionRole", "IngestFunctionRole", "PauseProbeFunctionRole"}
    for role_name, expected in (
        ("SyncFunctionRole", SYNC_GRANTS),
        ("IngestFunctionRole", INGEST_GRANTS),
        ("PauseProbeFunctionRole", PROBE_GRANTS),
    ):
        role = roles[role_name]["Properties"]
        # SAM's generated role would add managed policies granting logs and X-Ray on "*".
        assert "ManagedPolicyArns" not in role
        [trust] = role["AssumeRolePolicyDocument"]["Statement"]
        assert trust["Principal"] == {"Service": "lambda.amazonaws.com"}
        grants: dict[str, str] = {}
        for policy in role["Policies"]:
            for statement in statements(policy):
                assert statement["Effect"] == "Allow"
                assert "NotAction" not in statement
                assert "NotResource" not in statement
                named = " + ".join(sorted(granted(r) for r in as_list(statement["Resource"])))
                for action in as_list(statement["Action"]):
                    assert "*" not in action, action
                    assert action not in grants, f"{action} granted twice"
                    grants[action] = named
        assert grants == expected, role_name
    functions = resources(cfn, "AWS::Lambda::Function")
    assert target(functions["SyncFunction"]["Properties"]["Role"]) == "SyncFunctionRole"
    assert target(functions["IngestFunction"]["Properties"]["Role"]) == "IngestFunctionRole"
    probe = functions["PauseProbeFunction"]["Properties"]["Role"]
    assert target(probe) == "PauseProbeFunctionRole"


def granted(resource: Any) -> str:
    """The resource a statement names: a Ref or GetAtt, or the one ARN built with Sub (the
    stack's own event source mapping, which has no ARN attribute)."""
    if isinstance(resource, dict) and set(resource) == {"Fn::Sub"}:
        assert resource["Fn::Sub"] == MAPPING_ARN
        return "SyncFunctionChanges"
    return target(resource)


def test_the_pause_probe_runs_every_minute_and_switches_the_sync_mapping(
    cfn: dict[str, Any],
) -> None:
    """Issue 20: the circuit breaker. The probe is given the UUID of the sync function's
    own SQS mapping (SAM names it SyncFunction + the event's name), the alarm topic to
    tell a person, and runs on a one-minute schedule."""
    mappings = resources(cfn, "AWS::Lambda::EventSourceMapping")
    assert set(mappings) == {"SyncFunctionChanges"}
    assert target(mappings["SyncFunctionChanges"]["Properties"]["FunctionName"]) == "SyncFunction"
    variables = template_environment(cfn, "PauseProbeFunction")
    assert variables["SYNC_EVENT_SOURCE_MAPPING"] == {"Ref": "SyncFunctionChanges"}
    assert variables["ALARM_TOPIC_ARN"] == {"Ref": "AlarmTopic"}
    assert variables["STAGING_TABLE"] == {"Ref": "StagingTable"}
    assert variables["QOMON_API_KEY_SECRET"] == {"Ref": "QomonApiKeySecret"}
    assert (variables["PAUSE_PROBE_FIRST_S"], variables["PAUSE_PROBE_MAX_S"]) == ("60", "300")
    [rule] = resources(cfn, "AWS::Events::Rule").values()
    assert rule["Properties"]["ScheduleExpression"] == "rate(1 minute)"
    [rule_target] = rule["Properties"]["Targets"]
    assert rule_target["Arn"] == {"Fn::GetAtt": ["PauseProbeFunction", "Arn"]}
    spec = resources(cfn, "AWS::Lambda::Function")["PauseProbeFunction"]["Properties"]
    assert spec["Handler"] == "qomon_sync.handlers.pause_probe.handler"
    paused = props(cfn, "SpacePausedAlarm")
    assert (paused["MetricName"], paused["Statistic"], paused["Period"]) == (
        "SpacePaused",
        "Maximum",
        60,
    )
    long = props(cfn, "SpacePausedTooLongAlarm")
    # Well before the queue's 4-day retention, when SQS would delete what waits.
    assert long["MetricName"] == "SpacePausedSeconds"
    assert long["Threshold"] == 3 * 86400 < 4 * 86400
    retention = props(cfn, "ChangesQueue").get("MessageRetentionPeriod", 345600)
    assert int(retention) == 4 * 86400


def test_webhooks_arrive_at_a_throttled_http_api_route_to_the_ingest_function(
    cfn: dict[str, Any],
) -> None:
    [api] = resources(cfn, "AWS::ApiGatewayV2::Api").values()
    paths = api["Properties"]["Body"]["paths"]
    assert list(paths) == ["/webhooks/{source}"]
    # POST for deliveries, GET for a sender's check of the URL (Mailchimp's, on saving).
    assert sorted(paths["/webhooks/{source}"]) == ["get", "post"]
    for method in ("get", "post"):
        integration = paths["/webhooks/{source}"][method]["x-amazon-apigateway-integration"]
        # Payload 2.0 is the HTTP API v2 event shape the handler (and local mode) reads.
        assert integration["payloadFormatVersion"] == "2.0"
        assert "${IngestFunction.Arn}" in integration["uri"]["Fn::Sub"]
    [stage] = resources(cfn, "AWS::ApiGatewayV2::Stage").values()
    throttling = stage["Properties"]["DefaultRouteSettings"]
    assert throttling["ThrottlingRateLimit"] == {"Ref": "WebhookRateLimit"}
    assert throttling["ThrottlingBurstLimit"] == {"Ref": "WebhookBurstLimit"}
    ingest = props(cfn, "IngestFunction")
    assert ingest["Handler"] == "qomon_sync.handlers.ingest.handler"
    assert (ingest["Runtime"], ingest["Architectures"]) == ("python3.13", ["arm64"])
    secret = props(cfn, "WebhookSecrets")
    assert secret["SecretString"] == "{}"  # no source accepts anything until configured


# The HTTP API's access log: what may be written about a request. Nothing of the delivery
# itself (no body, header, query string or user agent): forms send personal data.
ACCESS_LOG_REQUIRED = {
    "requestId": "$context.requestId",
    "time": "$context.requestTime",
    "sourceIp": "$context.identity.sourceIp",
    "method": "$context.httpMethod",
    "routeKey": "$context.routeKey",
    "status": "$context.status",
    "responseLatency": "$context.responseLatency",
    "integrationError": "$context.integrationErrorMessage",
}
ACCESS_LOG_ALLOWED = set(ACCESS_LOG_REQUIRED.values()) | {
    "$context.path",
    "$context.integrationStatus",
    "$context.integrationLatency",
    "$context.error.message",
    "$context.apiId",
    "$context.stage",
}


def access_log_format(cfn: dict[str, Any]) -> dict[str, str]:
    [stage] = resources(cfn, "AWS::ApiGatewayV2::Stage").values()
    settings = stage["Properties"]["AccessLogSettings"]
    assert target(settings["DestinationArn"]) == "WebhookApiAccessLogGroup"
    fields: dict[str, str] = json.loads(settings["Format"])
    return fields


def test_the_http_api_logs_each_request_as_json_without_what_was_sent(
    cfn: dict[str, Any],
) -> None:
    fields = access_log_format(cfn)
    assert fields.items() >= ACCESS_LOG_REQUIRED.items()
    for key, value in fields.items():
        # One variable per key, quoted: API Gateway writes "-" for a missing value.
        assert re.fullmatch(r"\$context\.[A-Za-z.]+", value), key
        assert value in ACCESS_LOG_ALLOWED, f"{key}: {value} may carry what a sender sent"
    group = props(cfn, "WebhookApiAccessLogGroup")
    assert group["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    # Vended logs: one log group resource policy covers /aws/vendedlogs/* for every stack.
    assert group["LogGroupName"]["Fn::Sub"].startswith("/aws/vendedlogs/${AWS::StackName}/")


# -- alarms ----------------------------------------------------------------------------


def test_every_alarm_tells_the_alarm_topic_when_it_fires_and_when_it_clears(
    cfn: dict[str, Any],
) -> None:
    alarms = resources(cfn, "AWS::CloudWatch::Alarm")
    assert set(alarms) == ALARMS
    for name, alarm in alarms.items():
        spec = alarm["Properties"]
        assert spec["AlarmActions"] == [{"Ref": "AlarmTopic"}], name
        assert spec["OKActions"] == [{"Ref": "AlarmTopic"}], name
        assert spec["TreatMissingData"] == "notBreaching", name
        description = spec["AlarmDescription"]
        text = description["Fn::Sub"] if isinstance(description, dict) else description
        assert text.startswith("qomon-sync: "), name
        assert len(sub(text, {})) <= 1024, name


def test_alarm_thresholds(cfn: dict[str, Any]) -> None:
    def alarm(name: str) -> dict[str, Any]:
        return props(cfn, name)

    dlq = alarm("DeadLetterQueueNotEmptyAlarm")
    assert dlq["Namespace"] == "AWS/SQS"
    assert dlq["MetricName"] == "ApproximateNumberOfMessagesVisible"
    assert target(dlq["Dimensions"][0]["Value"]) == "DeadLetterQueue"
    assert (dlq["Threshold"], dlq["ComparisonOperator"]) == (1, "GreaterThanOrEqualToThreshold")
    # The runbook command in the description moves messages back to the changes queue.
    assert "start-message-move-task" in dlq["AlarmDescription"]["Fn::Sub"]
    assert "${ChangesQueue.Arn}" in dlq["AlarmDescription"]["Fn::Sub"]

    age = alarm("OldestChangeAgeAlarm")
    assert age["MetricName"] == "ApproximateAgeOfOldestMessage"
    assert target(age["Dimensions"][0]["Value"]) == "ChangesQueue"
    assert (age["Threshold"], age["Period"], age["EvaluationPeriods"]) == (900, 300, 3)

    errors = alarm("SyncErrorsAlarm")
    assert (errors["Namespace"], errors["MetricName"]) == ("AWS/Lambda", "Errors")
    assert (errors["EvaluationPeriods"], errors["DatapointsToAlarm"]) == (3, 3)
    assert (errors["Threshold"], errors["Period"]) == (1, 300)

    # A probe that fails leaves a pause untold and unended: its own errors alarm.
    probe = alarm("PauseProbeErrorsAlarm")
    assert (probe["Namespace"], probe["MetricName"]) == ("AWS/Lambda", "Errors")
    assert probe["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": "PauseProbeFunction"}}]
    assert (probe["Statistic"], probe["Period"], probe["Threshold"]) == ("Sum", 300, 3)

    throttles = alarm("SyncThrottlesAlarm")
    assert (throttles["MetricName"], throttles["Threshold"]) == ("Throttles", 1)
    for name in ("SyncErrorsAlarm", "SyncThrottlesAlarm"):
        assert target(alarm(name)["Dimensions"][0]["Value"]) == "SyncFunction"

    limited = alarm("QomonRateLimitedAlarm")
    variables = template_environment(cfn)
    assert limited["Namespace"] == variables["POWERTOOLS_METRICS_NAMESPACE"]
    assert limited["MetricName"] == "QomonRateLimited"
    assert limited["Dimensions"] == [
        {"Name": "service", "Value": variables["POWERTOOLS_SERVICE_NAME"]}
    ]
    assert (limited["Statistic"], limited["Threshold"], limited["Period"]) == ("Sum", 10, 300)


def access_log_line(cfn: dict[str, Any], values: dict[str, str]) -> dict[str, str]:
    """One access log line as API Gateway writes it: "-" for what the request lacks."""
    return {key: values.get(variable, "-") for key, variable in access_log_format(cfn).items()}


def matches(pattern: str, line: dict[str, str]) -> bool:
    """CloudWatch Logs' JSON filter pattern, for the one form used here:
    { $.key = "value" || $.key = "value" ... } over string values."""
    body = re.fullmatch(r"\{(.*)\}", pattern.strip())
    assert body is not None, pattern
    terms = [term.strip() for term in body.group(1).split("||")]
    hits = []
    for term in terms:
        found = re.fullmatch(r'\$\.(\w+) = "([^"*]*)"', term)
        assert found is not None, f'not of the form $.key = "value": {term}'
        key, value = found.groups()
        assert key in line, f"{key} is not in the access log format"
        hits.append(line[key] == value)
    return any(hits)


def test_the_front_door_alarms_count_the_access_log_answers(cfn: dict[str, Any]) -> None:
    filters = resources(cfn, "AWS::Logs::MetricFilter")
    metrics: dict[tuple[str, str], str] = {}
    for name, spec in filters.items():
        assert target(spec["Properties"]["LogGroupName"]) == "WebhookApiAccessLogGroup", name
        [transformation] = spec["Properties"]["MetricTransformations"]
        # Per API: two stacks in one account must not add up their refusals.
        assert transformation["Dimensions"] == [{"Key": "ApiId", "Value": "$.apiId"}]
        assert transformation["MetricValue"] == "1"
        assert "DefaultValue" not in transformation  # not allowed with dimensions
        metric = (transformation["MetricNamespace"], transformation["MetricName"])
        metrics[metric] = spec["Properties"]["FilterPattern"]

    def counted(metric: tuple[str, str], status: str) -> bool:
        line = access_log_line(
            cfn,
            {
                "$context.status": status,
                "$context.apiId": "a1b2c3",
                "$context.identity.sourceIp": "192.0.2.1",
            },
        )
        return matches(metrics[metric], line)

    refused = ("QomonSync/WebhookApi", "Answered401")
    failed = ("QomonSync/WebhookApi", "Answered5xx")
    assert set(metrics) == {refused, failed}
    statuses = ["202", "400", "401", "403", "404", "413", "422", "429", "500", "502", "503", "504"]
    assert [s for s in statuses if counted(refused, s)] == ["401"]
    assert [s for s in statuses if counted(failed, s)] == ["500", "502", "503", "504"]

    for alarm_name, metric, period, threshold in (
        ("WebhooksRefusedAlarm", refused, 3600, 3),
        ("WebhooksAnswered5xxAlarm", failed, 900, 3),
    ):
        alarm = props(cfn, alarm_name)
        assert (alarm["Namespace"], alarm["MetricName"]) == metric, alarm_name
        assert alarm["Dimensions"] == [{"Name": "ApiId", "Value": {"Ref": "WebhookApi"}}]
        assert (alarm["Statistic"], alarm["Period"], alarm["Threshold"]) == (
            "Sum",
            period,
            threshold,
        ), alarm_name
        assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"

    ingest = props(cfn, "IngestErrorsAlarm")
    assert (ingest["Namespace"], ingest["MetricName"]) == ("AWS/Lambda", "Errors")
    assert target(ingest["Dimensions"][0]["Value"]) == "IngestFunction"
    assert (ingest["Threshold"], ingest["Period"], ingest["EvaluationPeriods"]) == (1, 300, 1)


def test_cloudwatch_can_publish_to_the_encrypted_alarm_topic(cfn: dict[str, Any]) -> None:
    topic = props(cfn, "AlarmTopic")
    # Not alias/aws/sns: its key policy cannot admit CloudWatch, whose alarms would be lost.
    key = target(topic["KmsMasterKeyId"])
    key_spec = props(cfn, key)
    assert key_spec["EnableKeyRotation"] is True
    grants = {
        json.dumps(statement["Principal"], sort_keys=True): set(as_list(statement["Action"]))
        for statement in key_spec["KeyPolicy"]["Statement"]
    }
    assert grants[json.dumps({"Service": "cloudwatch.amazonaws.com"})] == {
        "kms:Decrypt",
        "kms:GenerateDataKey*",
    }
    subscription = props(cfn, "AlarmEmailSubscription")
    assert cfn["Resources"]["AlarmEmailSubscription"]["Condition"] == "HasAlarmEmail"
    assert (subscription["Protocol"], target(subscription["TopicArn"])) == ("email", "AlarmTopic")
    assert cfn["Parameters"]["AlarmEmail"]["Default"] == ""


# -- saved queries ---------------------------------------------------------------------

HANDLERS = FUNCTIONS / "qomon_sync" / "handlers"

# Each saved query, the log group it reads, and what it relies on: in the handler's
# source (a log message, or a key of a logged line) or in the access log's format.
QUERIES: dict[str, tuple[str, str, set[str]]] = {
    "DeadLettersQuery": (
        "why-dead-lettered",
        "SyncFunctionLogGroup",
        {"dead_letter", "events left for redelivery", "action", "event_id", "code"}
        | {"detail", "reason"},
    ),
    "ContactsChangedQuery": (
        "contacts-changed",
        "SyncFunctionLogGroup",
        {"event processed", "action", "replaced", "created", "contact_id"},
    ),
    "QomonRateLimitQuery": (
        "qomon-429s-and-redeliveries-by-minute",
        "SyncFunctionLogGroup",
        {"QomonRateLimited", "events left for redelivery", "reason"},
    ),
    "WebhookRefusalsByCallerQuery": (
        "webhook-refusals-by-caller",
        "WebhookApiAccessLogGroup",
        {"status", "sourceIp", "path"},
    ),
    "WebhookRefusalReasonsQuery": (
        "webhook-refusals-by-source-and-reason",
        "IngestFunctionLogGroup",
        {"webhook refused", "status", "field", "path"},
    ),
}


def logged_words(module: str) -> set[str]:
    """Every string literal of a handler and of the application it calls (for the sync,
    all of it and the handlers' telemetry, which writes its lines; for the ingest,
    application/ingest.py), and the keyword names passed to what logs (they become keys
    of the logged line)."""
    application = HANDLERS.parent / "application"
    paths = [HANDLERS / f"{module}.py"]
    if module == "sync":
        paths += [HANDLERS / "telemetry.py", *sorted(application.glob("*.py"))]
    else:
        paths.append(application / f"{module}.py")
    words: set[str] = set()
    for path in paths:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        words |= {
            node.value
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") in LOGGING_CALLS:
                words |= {keyword.arg for keyword in node.keywords if keyword.arg}
    return words


LOGGING_CALLS = {"_log", "event", "warning"}


def test_saved_queries_read_what_the_handlers_and_the_api_write(cfn: dict[str, Any]) -> None:
    definitions = resources(cfn, "AWS::Logs::QueryDefinition")
    assert set(definitions) == set(QUERIES)
    known = {
        "SyncFunctionLogGroup": logged_words("sync"),
        "IngestFunctionLogGroup": logged_words("ingest"),
        "WebhookApiAccessLogGroup": set(access_log_format(cfn)),
    }
    for name, (title, group, relies_on) in QUERIES.items():
        spec = props(cfn, name)
        # One folder per stack in the Logs Insights console.
        assert spec["Name"] == {"Fn::Sub": "${AWS::StackName}/" + title}, name
        [log_group] = spec["LogGroupNames"]
        assert target(log_group) == group, name
        query = spec["QueryString"]
        for word in relies_on:
            assert re.search(rf"\b{re.escape(word)}\b", query), f"{name} does not use {word}"
            assert word in known[group], f"{name} relies on {word!r}, which nothing writes"
    # The alarm on refused webhooks sends the reader to the query by its name.
    refused = props(cfn, "WebhooksRefusedAlarm")["AlarmDescription"]["Fn::Sub"]
    assert "${AWS::StackName}/webhook-refusals-by-caller" in refused


def test_the_429_query_parses_the_metric_line_powertools_writes(source: dict[str, Any]) -> None:
    query = props(source, "QomonRateLimitQuery")["QueryString"]
    [pattern] = re.findall(r"parse @message /(.+)/\n", query)
    regex = re.compile(pattern.replace("(?<", "(?P<"))  # Logs Insights' named groups
    # The provider behind the handlers' Metrics, with a metric set of its own.
    metrics = AmazonCloudWatchEMFProvider(namespace="QomonSync", service="qomon-sync")
    metrics.add_metric(name="QomonRateLimited", unit=MetricUnit.Count, value=3)
    metrics.add_metric(name="QomonCalls", unit=MetricUnit.Count, value=40)
    line = metrics.serialize_metric_set()
    # Powertools prints the line compact, and with spaces when it flushes 100 metrics.
    for separators in ((",", ":"), (", ", ": ")):
        found = regex.search(json.dumps(line, separators=separators))
        assert found is not None, separators
        assert float(found.group("rateLimited")) == 3


# -- dashboard and outputs -------------------------------------------------------------


def test_dashboard_shows_queues_function_and_every_custom_metric(cfn: dict[str, Any]) -> None:
    dashboard = props(cfn, "Dashboard")
    body = json.loads(sub(dashboard["DashboardBody"]["Fn::Sub"], {"SyncMaximumConcurrency": "2"}))
    lines = [
        line
        for widget in body["widgets"]
        if widget["type"] == "metric"
        for line in widget["properties"]["metrics"]
    ]
    plotted: dict[tuple[str, str], set[str]] = {}
    searched: set[str] = set()
    for line in lines:
        if isinstance(line[0], dict):
            expression = line[0]["expression"]
            assert 'service="qomon-sync"' in expression
            searched |= set(re.findall(r'MetricName=\\?"(\w+)\\?"', expression))
            continue
        namespace, metric, *dimensions = (part for part in line if isinstance(part, str))
        options = line[-1] if isinstance(line[-1], dict) else {}
        plotted.setdefault((namespace, metric), set()).add(options.get("stat", "?"))
        if namespace == "QomonSync":
            assert dimensions == ["service", "qomon-sync"], line
    custom = {metric for namespace, metric in plotted if namespace == "QomonSync"} | searched
    assert custom >= CUSTOM_METRICS
    assert plotted[("QomonSync", "QomonLatency")] == {"p50", "p90"}
    for metric in ("Invocations", "Errors", "Throttles", "Duration", "ConcurrentExecutions"):
        assert ("AWS/Lambda", metric) in plotted
    for metric in ("ApproximateNumberOfMessagesVisible", "ApproximateAgeOfOldestMessage"):
        assert ("AWS/SQS", metric) in plotted
    # The front door's alarms, next to what API Gateway counts itself.
    for metric in ("Answered401", "Answered5xx"):
        assert ("QomonSync/WebhookApi", metric) in plotted
    assert ("AWS/ApiGateway", "Count") in plotted
    text = dashboard["DashboardBody"]["Fn::Sub"]
    for queue in ("ChangesQueue", "DeadLetterQueue"):
        assert f'"QueueName", "${{{queue}.QueueName}}"' in text


def test_outputs(cfn: dict[str, Any]) -> None:
    outputs = cfn["Outputs"]
    assert set(outputs) == OUTPUTS
    url = outputs["DashboardUrl"]["Value"]["Fn::Sub"]
    assert url == (
        "https://${AWS::Region}.console.aws.amazon.com/cloudwatch/home"
        "?region=${AWS::Region}#dashboards:name=${Dashboard}"
    )
    assert target(outputs["QomonApiKeySecretArn"]["Value"]) == "QomonApiKeySecret"
    assert target(outputs["AlarmTopicArn"]["Value"]) == "AlarmTopic"
    assert target(outputs["WebhookSecretsArn"]["Value"]) == "WebhookSecrets"
    webhook = outputs["WebhookUrl"]["Value"]["Fn::Sub"]
    assert webhook.endswith("/webhooks/{source}")


# -- sample event ----------------------------------------------------------------------


def test_sams_sample_sqs_event_carries_a_valid_change_event(cfn: dict[str, Any]) -> None:
    sample = json.loads((EVENTS / "sqs" / "receive-message.json").read_text(encoding="utf-8"))
    [record] = sample["Records"]
    assert record["eventSource"] == "aws:sqs"
    queue_name = sub(
        props(cfn, "ChangesQueue")["QueueName"]["Fn::Sub"], {"AWS::StackName": "qomon-sync"}
    )
    assert record["eventSourceARN"].endswith(":" + queue_name)
    event = ChangeEvent.model_validate_json(record["body"])
    original = load_event("changes/01-tally-consent-and-support.json")
    assert event.event_id == original["event_id"]
    assert json.loads(record["body"]) == original


def test_the_ledger_outlives_what_the_queues_keep(
    source: dict[str, Any], cfn: dict[str, Any]
) -> None:
    """An event older than the ledger's retention is refused as a possible replay, so the
    default must outlive the queue's retention plus the dead-letter queue's: a letter
    redriven on its last day is still applied."""
    days = source["Parameters"]["LedgerRetentionDays"]["Default"]
    kept_s = sum(
        props(cfn, name)["MessageRetentionPeriod"] for name in ("ChangesQueue", "DeadLetterQueue")
    )
    assert days * 86_400 > kept_s
    env = props(cfn, "SyncFunction")["Environment"]["Variables"]
    assert env["LEDGER_RETENTION_DAYS"] == {"Ref": "LedgerRetentionDays"}


def test_the_pseudonym_key_is_generated_by_the_stack_and_read_by_both_functions(
    cfn: dict[str, Any],
) -> None:
    """Issue 11: an unsalted hash of an e-mail can be found again from a list of guesses;
    each deployment keys its pseudonyms with a secret of its own, never typed by anyone."""
    secret = props(cfn, "PseudonymKeySecret")
    assert "SecretString" not in secret
    assert secret["GenerateSecretString"]["PasswordLength"] >= 32
    functions = resources(cfn, "AWS::Lambda::Function")
    for name in ("SyncFunction", "IngestFunction"):
        variables = functions[name]["Properties"]["Environment"]["Variables"]
        assert variables["PSEUDONYM_KEY_SECRET"] == {"Ref": "PseudonymKeySecret"}, name
