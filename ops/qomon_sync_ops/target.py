"""Which qomon-sync a command looks at: a deployed stack, or local mode on this machine.

`--stack NAME` reads the stack's outputs (and two parameters) through CloudFormation's
DescribeStacks, with `--region` and `--profile` as the AWS CLI takes them; `--local`
reads the endpoints file `qomon-sync local` writes (`.local-run/endpoints.json`, or
`--endpoints-file F`). Both end as one `Target`, so every command runs the same code
against either.
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, ProfileNotFound

from qomon_sync.domain.privacy import MIN_KEY_LENGTH, Pseudonyms

LOCAL_STATE_DIR = Path(".local-run")
LOCAL_STATE_DIR_ENV = "QOMON_SYNC_LOCAL_STATE_DIR"
LOCAL_ENDPOINTS_FILE = "endpoints.json"
"""Where `qomon-sync local` writes its endpoints (a test keeps these equal to local mode's)."""
LOCAL_STACK = "qomon-sync-local"
STACK_ENV = "QOMON_SYNC_STACK"

REQUIRED_OUTPUTS = (
    "ChangesQueueUrl",
    "ChangesQueueArn",
    "DeadLetterQueueUrl",
    "DeadLetterQueueArn",
    "IdempotencyTableName",
    "QomonApiKeySecretArn",
)
OPTIONAL_OUTPUTS = (
    "WebhookUrl",
    "WebhookSecretsArn",
    "DashboardUrl",
    "AlarmTopicArn",
    "StagingTableName",
    "PseudonymKeySecretArn",
    "PauseProbeFunctionName",
)
"""template.yaml's Outputs that the commands read (a test checks the template has them)."""

_LOCAL_KEYS = (
    "aws_endpoint_url",
    "region",
    "changes_queue_url",
    "changes_queue_arn",
    "dead_letter_queue_url",
    "idempotency_table",
    "qomon_api_key_secret",
    "qomon_url",
)
_CLIENT_CONFIG = Config(connect_timeout=5, read_timeout=30, retries={"max_attempts": 3})


class OpsError(Exception):
    """What went wrong, in words, and what to do: the command prints it and exits 2."""


@dataclass(frozen=True)
class Target:
    """Where the queues, the table and the secrets of one qomon-sync are."""

    description: str
    """`stack qomon-sync-prod (eu-west-3)` or `local mode (.local-run/endpoints.json)`."""
    local: bool
    region: str
    changes_queue_url: str
    changes_queue_arn: str
    dead_letter_queue_url: str
    dead_letter_queue_arn: str
    idempotency_table: str
    qomon_api_key_secret: str
    qomon_base_url: str
    stack_name: str
    """The alarms are named `<stack>-...`."""
    passthrough: frozenset[str] = frozenset({"address.citycode"})
    """The contact fields the stack sends back unchanged (UnknownFieldsPassthrough)."""
    dashboard_url: str = ""
    staging_table: str = ""
    """Where the sync keeps a contact's events until its flush; empty: not known."""
    ledger_retention_days: int | None = None
    """Older events are refused as possible replays (LedgerRetentionDays); None: unknown."""
    pseudonym_key_secret: str = ""
    """The key of e-mail pseudonyms (message groups, masked e-mails); empty: not known."""
    pause_probe_function: str = ""
    """The pause probe function (`qomon-sync resume` invokes it); empty: not known."""
    endpoint_url: str | None = None
    profile: str | None = None
    _session: Any = field(default=None, compare=False, repr=False)

    def pseudonyms(self) -> Pseudonyms:
        """The deployment's pseudonyms, keyed as its functions key them: the key is read
        from the stack's secret (local mode's) when a pseudonym is first needed."""
        cache: list[str] = []

        def key() -> str:
            if not cache:
                cache.append(_pseudonym_key(self))
            return cache[0]

        return Pseudonyms(key)

    def client(self, service: str) -> Any:
        session = self._session or boto3.Session(profile_name=self.profile, region_name=self.region)
        return session.client(service, endpoint_url=self.endpoint_url, config=_CLIENT_CONFIG)

    @property
    def dead_letter_queue_name(self) -> str:
        return self.dead_letter_queue_url.rstrip("/").rsplit("/", 1)[-1]

    @property
    def changes_queue_name(self) -> str:
        return self.changes_queue_url.rstrip("/").rsplit("/", 1)[-1]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    where = parser.add_argument_group(
        "which qomon-sync", "a deployed stack (--stack) or local mode (--local)"
    )
    choice = where.add_mutually_exclusive_group()
    choice.add_argument(
        "--stack", metavar="NAME", help=f"the deployed stack's name (default: ${STACK_ENV})"
    )
    choice.add_argument(
        "--local",
        action="store_true",
        help=f"local mode: {LOCAL_STATE_DIR / LOCAL_ENDPOINTS_FILE} (or in ${LOCAL_STATE_DIR_ENV})",
    )
    choice.add_argument(
        "--endpoints-file", type=Path, metavar="F", help="local mode's endpoints file"
    )
    where.add_argument("--region", help="the stack's AWS region (as the AWS CLI takes it)")
    where.add_argument("--profile", help="the AWS CLI profile to use")


def resolve(args: argparse.Namespace) -> Target:
    if args.local or args.endpoints_file:
        return from_endpoints_file(args.endpoints_file or local_endpoints_file())
    stack = args.stack or os.environ.get(STACK_ENV)
    if not stack:
        raise OpsError(
            "say which qomon-sync to look at: --stack NAME for a deployed stack (the name "
            "you gave `sam deploy`), or --local for `qomon-sync local` on this machine"
        )
    return from_stack(stack, region=args.region, profile=args.profile)


def local_endpoints_file() -> Path:
    folder = Path(os.environ.get(LOCAL_STATE_DIR_ENV) or LOCAL_STATE_DIR)
    return folder / LOCAL_ENDPOINTS_FILE


def from_endpoints_file(path: Path) -> Target:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise OpsError(
            f"there is no local mode endpoints file at {path}: start `qomon-sync local` "
            "first (it writes that file), or name the file with --endpoints-file"
        ) from None
    except (OSError, ValueError) as error:
        raise OpsError(f"{path} cannot be read as local mode's endpoints ({error})") from None
    missing = [key for key in _LOCAL_KEYS if not isinstance(data.get(key), str)]
    if not isinstance(data, dict) or missing:
        raise OpsError(f"{path} is not local mode's endpoints file (it lacks {missing})")
    session = boto3.Session(
        aws_access_key_id="local",
        aws_secret_access_key="local",  # noqa: S106 - local mode takes any key
        region_name=data["region"],
    )
    target = Target(
        description=f"local mode ({path})",
        local=True,
        region=data["region"],
        changes_queue_url=data["changes_queue_url"],
        changes_queue_arn=data["changes_queue_arn"],
        dead_letter_queue_url=data["dead_letter_queue_url"],
        dead_letter_queue_arn=str(data.get("dead_letter_queue_arn") or ""),
        idempotency_table=data["idempotency_table"],
        qomon_api_key_secret=data["qomon_api_key_secret"],
        qomon_base_url=data["qomon_url"],
        stack_name=LOCAL_STACK,
        passthrough=_paths(data.get("unknown_fields_passthrough")),
        staging_table=str(data.get("staging_table") or ""),
        pseudonym_key_secret=str(
            data.get("pseudonym_key_secret") or f"{LOCAL_STACK}/pseudonym-key"
        ),
        endpoint_url=data["aws_endpoint_url"],
        _session=session,
    )
    if target.dead_letter_queue_arn:
        return target
    # Endpoints files written before the ARN was listed: ask the local AWS.
    arn = _queue_arn(target)
    return replace(target, dead_letter_queue_arn=arn)


def _queue_arn(target: Target) -> str:
    try:
        answer = target.client("sqs").get_queue_attributes(
            QueueUrl=target.dead_letter_queue_url, AttributeNames=["QueueArn"]
        )
    except (BotoCoreError, ClientError) as error:
        raise unreachable(target, error) from None
    return str(answer["Attributes"]["QueueArn"])


def from_stack(name: str, *, region: str | None, profile: str | None) -> Target:
    try:
        session = boto3.Session(profile_name=profile, region_name=region)
    except ProfileNotFound:
        raise OpsError(
            f"there is no AWS CLI profile named {profile!r}: see `aws configure list-profiles`"
        ) from None
    if not session.region_name:
        raise OpsError(
            "no AWS region: pass --region (the region you deployed to, e.g. eu-west-3) or "
            "set one with `aws configure`"
        )
    cloudformation = session.client("cloudformation", config=_CLIENT_CONFIG)
    try:
        stacks = cloudformation.describe_stacks(StackName=name)["Stacks"]
    except NoCredentialsError:
        raise OpsError(
            "no AWS credentials: run `aws configure` (or `aws sso login`), or pass --profile"
        ) from None
    except ClientError as error:
        message = str(error.response.get("Error", {}).get("Message") or error)
        if "does not exist" in message:
            raise OpsError(
                f"there is no stack named {name!r} in {session.region_name}: check the name "
                "(`aws cloudformation list-stacks`) and --region"
            ) from None
        raise OpsError(f"CloudFormation refused to describe stack {name!r}: {message}") from None
    except BotoCoreError as error:
        raise OpsError(f"CloudFormation could not be reached: {error}") from None
    stack = stacks[0]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs") or []}
    parameters = {
        p["ParameterKey"]: p.get("ParameterValue", "") for p in stack.get("Parameters") or []
    }
    missing = [key for key in REQUIRED_OUTPUTS if not outputs.get(key)]
    if missing:
        raise OpsError(
            f"stack {name!r} is not a qomon-sync stack, or is still being created: it has no "
            f"output {', '.join(missing)}"
        )
    return Target(
        description=f"stack {name} ({session.region_name})",
        local=False,
        region=session.region_name,
        changes_queue_url=outputs["ChangesQueueUrl"],
        changes_queue_arn=outputs["ChangesQueueArn"],
        dead_letter_queue_url=outputs["DeadLetterQueueUrl"],
        dead_letter_queue_arn=outputs["DeadLetterQueueArn"],
        idempotency_table=outputs["IdempotencyTableName"],
        qomon_api_key_secret=outputs["QomonApiKeySecretArn"],
        qomon_base_url=parameters.get("QomonBaseUrl") or "https://incoming.qomon.app",
        stack_name=name,
        passthrough=_paths(parameters.get("UnknownFieldsPassthrough", "address.citycode")),
        dashboard_url=outputs.get("DashboardUrl", ""),
        staging_table=outputs.get("StagingTableName", ""),
        pseudonym_key_secret=outputs.get("PseudonymKeySecretArn", ""),
        pause_probe_function=outputs.get("PauseProbeFunctionName", ""),
        ledger_retention_days=_days(parameters.get("LedgerRetentionDays")),
        profile=profile,
        _session=session,
    )


def _days(value: str | None) -> int:
    try:
        return int(value or 21)
    except ValueError:
        return 21


def _paths(value: object) -> frozenset[str]:
    if not isinstance(value, str):
        return frozenset({"address.citycode"})
    return frozenset(part.strip() for part in value.split(",") if part.strip())


def _pseudonym_key(target: Target) -> str:
    if not target.pseudonym_key_secret:
        raise OpsError(
            f"{target.description} does not say where its pseudonym key is (a stack deployed "
            "before this version): redeploy it with `sam deploy`, then run this again"
        )
    try:
        answer = target.client("secretsmanager").get_secret_value(
            SecretId=target.pseudonym_key_secret
        )
    except (BotoCoreError, ClientError) as error:
        raise unreachable(target, error) from None
    key = str(answer.get("SecretString") or "").strip()
    if len(key) < MIN_KEY_LENGTH:
        raise OpsError(
            f"the pseudonym key secret of {target.description} holds no usable key: it is "
            "made by the stack (or local mode) and must not be edited; redeploy to restore it"
        )
    return key


def unreachable(target: Target, error: Exception) -> OpsError:
    """An AWS call failed: say so in words, with what to try."""
    if isinstance(error, NoCredentialsError):
        return OpsError(
            "no AWS credentials: run `aws configure` (or `aws sso login`), or pass --profile"
        )
    if isinstance(error, ClientError):
        err = error.response.get("Error", {})
        code, message = err.get("Code", "?"), err.get("Message", "")
        if code in {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation"}:
            return OpsError(
                f"AWS refused access ({message}): your credentials need the rights on the "
                f"stack's queues, table and secret ({target.description})"
            )
        return OpsError(f"AWS answered {code}: {message} ({target.description})")
    if target.local:
        return OpsError(
            f"local mode does not answer at {target.endpoint_url}: is `qomon-sync local` "
            f"running? ({type(error).__name__})"
        )
    return OpsError(f"AWS could not be reached: {error}")
