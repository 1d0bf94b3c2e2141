"""The operators' commands with --stack, against moto's CloudFormation: a small stack
with the Outputs (and Parameters) template.yaml declares, read through DescribeStacks, so
the same code paths run as in AWS."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from moto import mock_aws

from qomon_sync.adapters.dead_letters import DeadLetter, DeadLetterQueue
from qomon_sync_ops import target
from qomon_sync_ops.cli import main
from tests.conftest import ROOT

STACK = "qomon-sync-test"
REGION = "eu-west-3"

TEMPLATE = {
    "AWSTemplateFormatVersion": "2010-09-09",
    "Parameters": {
        "QomonBaseUrl": {"Type": "String", "Default": "https://incoming.qomon.app"},
        "UnknownFieldsPassthrough": {"Type": "String", "Default": "address.citycode"},
        "LedgerRetentionDays": {"Type": "Number", "Default": 21},
        # moto's CloudFormation has no AWS::SecretsManager::Secret: the test makes it.
        "SecretArn": {"Type": "String"},
    },
    "Resources": {
        "DeadLetterQueue": {
            "Type": "AWS::SQS::Queue",
            "Properties": {"QueueName": f"{STACK}-dead-letter.fifo", "FifoQueue": True},
        },
        "ChangesQueue": {
            "Type": "AWS::SQS::Queue",
            "Properties": {"QueueName": f"{STACK}-changes.fifo", "FifoQueue": True},
        },
        "IdempotencyTable": {
            "Type": "AWS::DynamoDB::Table",
            "Properties": {
                "AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "S"}],
                "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
                "BillingMode": "PAY_PER_REQUEST",
            },
        },
        "StagingTable": {
            "Type": "AWS::DynamoDB::Table",
            "Properties": {
                "AttributeDefinitions": [
                    {"AttributeName": "pk", "AttributeType": "S"},
                    {"AttributeName": "sk", "AttributeType": "S"},
                ],
                "KeySchema": [
                    {"AttributeName": "pk", "KeyType": "HASH"},
                    {"AttributeName": "sk", "KeyType": "RANGE"},
                ],
                "BillingMode": "PAY_PER_REQUEST",
            },
        },
        "AlarmTopic": {"Type": "AWS::SNS::Topic"},
    },
    "Outputs": {
        "ChangesQueueUrl": {"Value": {"Ref": "ChangesQueue"}},
        "ChangesQueueArn": {"Value": {"Fn::GetAtt": ["ChangesQueue", "Arn"]}},
        "DeadLetterQueueUrl": {"Value": {"Ref": "DeadLetterQueue"}},
        "DeadLetterQueueArn": {"Value": {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}},
        "IdempotencyTableName": {"Value": {"Ref": "IdempotencyTable"}},
        "QomonApiKeySecretArn": {"Value": {"Ref": "SecretArn"}},
        "WebhookUrl": {"Value": "https://example.invalid/webhooks/{source}"},
        "DashboardUrl": {"Value": "https://example.invalid/dashboard"},
        "AlarmTopicArn": {"Value": {"Ref": "AlarmTopic"}},
        "StagingTableName": {"Value": {"Ref": "StagingTable"}},
    },
}


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        secret = boto3.client("secretsmanager", region_name=REGION).create_secret(
            Name=f"{STACK}/qomon-api-key", SecretString="REPLACE_ME"
        )
        cloudformation = boto3.client("cloudformation", region_name=REGION)
        cloudformation.create_stack(
            StackName=STACK,
            TemplateBody=json.dumps(TEMPLATE),
            Parameters=[
                {"ParameterKey": "UnknownFieldsPassthrough", "ParameterValue": "a,b"},
                {"ParameterKey": "SecretArn", "ParameterValue": secret["ARN"]},
            ],
        )
        [described] = cloudformation.describe_stacks(StackName=STACK)["Stacks"]
        yield {o["OutputKey"]: o["OutputValue"] for o in described["Outputs"]}


def ops(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str]:
    capsys.readouterr()
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


ON_STACK = ("--stack", STACK, "--region", REGION)


def dead_letter(outputs: dict[str, str], code: str, contact_id: int) -> str:
    event_id = f"evt-{uuid.uuid4().hex[:8]}"
    body = {
        "event_id": event_id,
        "source": "tally",
        "occurred_at": "2026-11-24T10:00:00Z",
        "contact": {"id": contact_id},
        "set": {"mobile": "+33600000999"},
    }
    DeadLetterQueue(boto3.client("sqs", region_name=REGION), outputs["DeadLetterQueueUrl"]).send(
        DeadLetter(
            body=json.dumps(body),
            group_id=f"id:{contact_id}",
            deduplication_id=uuid.uuid4().hex,
            code=code,
            detail="call +33 6 00 00 09 99 about it",
            fields=("set.mobile",),
            event_id=event_id,
        )
    )
    return event_id


def queue_count(url: str) -> int:
    attributes = boto3.client("sqs", region_name=REGION).get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return sum(int(v) for v in attributes.values())


def test_the_stack_is_read_from_its_outputs_and_parameters(stack: dict[str, str]) -> None:
    found = target.from_stack(STACK, region=REGION, profile=None)
    assert found.changes_queue_url == stack["ChangesQueueUrl"]
    assert found.dead_letter_queue_arn == stack["DeadLetterQueueArn"]
    assert found.idempotency_table == stack["IdempotencyTableName"]
    assert found.passthrough == frozenset({"a", "b"})
    assert found.ledger_retention_days == 21
    assert found.description == f"stack {STACK} ({REGION})"


def test_an_unknown_stack_is_said_in_words(
    stack: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = ops(capsys, "dlq", "list", "--stack", "nope", "--region", REGION)
    assert code == 2
    assert "there is no stack named 'nope' in eu-west-3" in out
    code, out = ops(capsys, "status")
    assert code == 2
    assert "--stack NAME" in out


def test_dlq_list_redrive_and_drop_on_a_stack(
    stack: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    guard = dead_letter(stack, "data_loss_guard", 700103)
    value = [dead_letter(stack, "unknown_value", 700106 + i) for i in range(2)]
    code, out = ops(capsys, "dlq", "list", *ON_STACK)
    assert code == 0
    assert "holds 3 letters (unknown_value 2, data_loss_guard 1)" in out
    assert "+33" not in out  # the detail is masked, the body not shown

    code, out = ops(capsys, "dlq", "show", value[0], *ON_STACK)
    assert "+33600000999" not in out
    assert "Detail: call <phone> about it" in out  # masked when written, and again when shown
    code, out = ops(capsys, "dlq", "redrive", *ON_STACK, "--code", "unknown_value")
    assert code == 0, out
    assert "Moved 2 letters back" in out
    assert queue_count(stack["ChangesQueueUrl"]) == 2
    assert queue_count(stack["DeadLetterQueueUrl"]) == 1

    [moved] = boto3.client("sqs", region_name=REGION).receive_message(
        QueueUrl=stack["ChangesQueueUrl"], AttributeNames=["All"]
    )["Messages"]
    assert moved["Attributes"]["MessageGroupId"] == "id:700106"

    code, out = ops(capsys, "dlq", "drop", *ON_STACK, "--event-id", guard, "--yes")
    assert code == 0
    assert f"dropped {guard} (source tally, data_loss_guard" in out
    assert queue_count(stack["DeadLetterQueueUrl"]) == 0


def test_redrive_all_falls_back_where_sqs_has_no_move_task(
    stack: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    for i in range(12):  # more than one receive, several contacts
        dead_letter(stack, "contact_not_found", 700100 + i % 4)
    code, out = ops(capsys, "dlq", "redrive", *ON_STACK, "--all")
    assert code == 0, out
    assert "one by one instead" in out
    assert "Moved 12 letters back" in out
    assert queue_count(stack["ChangesQueueUrl"]) == 12
    assert queue_count(stack["DeadLetterQueueUrl"]) == 0


def test_status_reads_queues_letters_metrics_and_alarms(
    stack: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    dead_letter(stack, "unknown_value", 700103)
    cloudwatch = boto3.client("cloudwatch", region_name=REGION)
    now = datetime.now(UTC)
    service = [{"Name": "service", "Value": "qomon-sync"}]
    cloudwatch.put_metric_data(
        Namespace="QomonSync",
        MetricData=[
            {"MetricName": "ContactsReplaced", "Dimensions": service, "Value": 7, "Timestamp": now},
            {
                "MetricName": "QomonTokensSpent",
                "Dimensions": service,
                "Value": 420,
                "Timestamp": now,
            },
            {
                "MetricName": "EventsDeadLettered",
                "Dimensions": [*service, {"Name": "reason", "Value": "unknown_value"}],
                "Value": 1,
                "Timestamp": now,
            },
        ],
    )
    cloudwatch.put_metric_alarm(
        AlarmName=f"{STACK}-dead-letter-queue-not-empty",
        MetricName="ApproximateNumberOfMessagesVisible",
        Namespace="AWS/SQS",
        Statistic="Maximum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=1,
        ComparisonOperator="GreaterThanOrEqualToThreshold",
    )
    cloudwatch.set_alarm_state(
        AlarmName=f"{STACK}-dead-letter-queue-not-empty", StateValue="ALARM", StateReason="1 letter"
    )
    code, out = ops(capsys, "status", *ON_STACK)
    assert code == 0, out
    assert "Changes queue: 0 events waiting" in out
    assert "Staging table: no event waits for its contact's flush" in out
    assert "Dead-letter queue: 1 letter (unknown_value 1)" in out
    assert "contacts replaced 7" in out
    assert "events dead-lettered 1 (unknown_value 1)" in out
    assert "Qomon tokens spent 420" in out
    assert f"1 alarm in alarm: {STACK}-dead-letter-queue-not-empty (1 letter)" in out
    assert "Next: `qomon-sync dlq list`" in out


def test_the_outputs_read_are_the_templates() -> None:
    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("!", lambda loader, suffix, node: None)
    text = (ROOT / "template.yaml").read_text(encoding="utf-8")
    template: dict[str, Any] = yaml.load(text, Loader=Loader)  # noqa: S506 - a SafeLoader
    for name in (*target.REQUIRED_OUTPUTS, *target.OPTIONAL_OUTPUTS):
        assert name in template["Outputs"], name
    for name in ("QomonBaseUrl", "UnknownFieldsPassthrough", "LedgerRetentionDays"):
        assert name in template["Parameters"], name
