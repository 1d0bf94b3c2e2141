"""The one settings model, read once from the environment.

Secrets are never settings values: the Qomon API key is read at run time from Secrets
Manager (see adapters.secrets); only the secret's name travels in the environment.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated

from pydantic import Field, HttpUrl, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from qomon_sync.domain.policy import DEFAULT_REFUSAL_PATTERN, AssemblyPolicy, ShapePolicy

QOMON_EU_URL = "https://incoming.qomon.app"
QOMON_US_URL = "https://incoming-us.qomon.app"

Positive = Annotated[float, Field(gt=0)]
FieldPaths = Annotated[frozenset[str], NoDecode]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    # -- where things are (set by template.yaml, or by local mode) ----------------------
    qomon_api_key_secret: str = "qomon-sync/qomon-api-key"  # noqa: S105 - a name, not a key
    """Name or ARN of the Secrets Manager secret holding the Qomon API key: the key itself,
    or JSON `{"api_key": "..."}`."""
    pseudonym_key_secret: str = "qomon-sync/pseudonym-key"  # noqa: S105 - a name
    """Secrets Manager secret holding the key of e-mail pseudonyms (message groups, logs)."""
    changes_queue_url: str = ""
    """The FIFO queue of change events (the ingest function writes to it)."""
    dead_letter_queue_url: str = ""
    """The FIFO dead-letter queue: permanent failures are sent here at once, with reasons."""
    idempotency_table: str = "qomon-sync-idempotency"
    """DynamoDB table of processed event ids (Powertools idempotency layout: `id`, TTL
    attribute `expiration`)."""
    staging_table: str = "qomon-sync-staging"
    """DynamoDB table (partition key `pk`, sort key `sk`, TTL attribute `expires_at`) where
    a contact's waiting events gather until one flush applies them, and what every instance
    shares: the token bucket, the forms, the e-mails already looked up."""
    max_receive_count: Annotated[int, Field(ge=1, le=1000)] = 5
    """The changes queue's redrive `maxReceiveCount`: on a flush's last delivery, events a
    retry cannot reach any more are dead-lettered with the reason, not moved without one."""
    batch_size: Annotated[int, Field(ge=1, le=10)] = 10
    """The event source mapping's BatchSize: a batch this full may stop mid-backlog."""
    staging_max_age_s: Annotated[float, Field(ge=0)] = 300.0
    """A contact whose events have waited this long is flushed even if more are coming,
    so a steady stream into one contact still reaches Qomon."""
    email_lookup_wait_s: Annotated[float, Field(ge=0, le=300)] = 15.0
    """On a backlog, how long a person named by an e-mail not known yet may wait, staged,
    for others to be looked up in the same search (application.mail_lookup); a batch
    that is not full never waits."""
    email_cache_s: Annotated[float, Field(ge=0, le=3600)] = 600.0
    """How long an e-mail's contact id is remembered (0: never): within that time a second
    contact given the same e-mail in Qomon goes unnoticed (see adapters.space_cache)."""
    ledger_retention_days: Annotated[int, Field(ge=1, le=36_500)] = 21
    """How long an applied event is remembered, so that a redelivery or a replay of it is
    not applied again. It also bounds what is applied at all: an event that occurred
    longer ago than this is refused (`outside_replay_window`), since the ledger could no
    longer tell a replay from a first delivery. The default outlives the queue's 4 days
    plus the dead-letter queue's 14 days, so a redriven letter is still applied."""
    future_skew_s: Annotated[float, Field(ge=0, le=86_400)] = 300.0
    """How far in the future an event's `occurred_at` may be (senders' clocks drift)."""
    forms_cache_s: Annotated[float, Field(ge=0)] = 900.0
    """How long the space's forms, loaded once for every instance, are reused (they change
    only in Qomon's UI)."""
    safety_margin_s: Annotated[float, Field(ge=1)] = 8.0
    """Time kept back from the Lambda timeout: no contact is started with less than this."""
    dry_run: bool = False
    """Assemble and log what would be written (its structure and changed paths, no
    values), never write to Qomon."""
    dry_run_show_values: bool = False
    """Local mode only: log the values a dry run would write too. Ignored in AWS Lambda."""
    aws_execution_env: str = ""
    """Set by the Lambda runtime (AWS_EXECUTION_ENV): how the handlers know they run in AWS."""

    # -- the pause (application.pause, docs/architecture.md) -----------------------------
    pause_window_s: Annotated[float, Field(gt=0)] = 120.0
    """Two contacts whose flushes meet a systemic failure (Qomon's 5xx, a timeout, a refused
    connection) within this many seconds pause the space; one contact alone never does."""
    pause_probe_first_s: Annotated[float, Field(gt=0)] = 60.0
    """The wait before the first probe of a pause, and after the first failed probe."""
    pause_probe_max_s: Annotated[float, Field(gt=0)] = 300.0
    """The longest wait between two probes (the wait doubles after each failed probe)."""
    pause_hold_s: Annotated[float, Field(ge=0, le=30)] = 5.0
    """A batch that found the space paused holds its messages this long before it returns,
    so that in the minute before the probe disables the event source mapping the paused
    contacts' markers do not go round the queue as fast as it delivers them."""
    pause_requeue_after_s: Annotated[float, Field(gt=0)] = 259_200.0
    """A pause that lasted this long (3 days; the queue keeps messages 4) ends by queuing a
    flush marker for every group with staged events: SQS may have deleted theirs."""
    sync_event_source_mapping: str = ""
    """The probe function: the UUID of the sync function's SQS event source mapping."""
    alarm_topic_arn: str = ""
    """The probe function: the topic (AlarmEmail subscribes) told when a pause starts or ends."""

    # -- observability (read by handlers.observability) ---------------------------------
    powertools_service_name: str = "qomon-sync"
    powertools_metrics_namespace: str = "QomonSync"

    # -- webhook ingest -----------------------------------------------------------------
    webhook_secrets_secret: str = "qomon-sync/webhook-secrets"  # noqa: S105 - a name
    """Secrets Manager secret holding JSON `{"<source>": "<secret or token>", ...}`."""
    sources_config: str = ""
    """The mapping file; empty means `sources.yaml` beside the qomon_sync package."""
    max_message_bytes: Annotated[int, Field(ge=1024, le=262_144)] = 262_144
    """SQS's message size limit (256 KiB): a larger delivery is answered 413."""

    # -- Qomon --------------------------------------------------------------------------

    qomon_base_url: HttpUrl = HttpUrl(QOMON_EU_URL)
    """EU spaces use the default; spaces hosted in the US use QOMON_US_URL."""
    qomon_connect_timeout_s: Positive = 3.05
    qomon_read_timeout_s: Positive = 10.0
    qomon_bucket_size: Annotated[int, Field(ge=5)] = 100
    """Qomon's observed burst; a PATCH costs 5, so anything smaller could never send one."""
    qomon_refill_per_s: Positive = 10.0
    qomon_bucket_headroom_s: Annotated[float, Field(ge=0, le=5)] = 1.0
    """Refill kept back from the burst for calls that arrive after their booking
    (adapters.shared_bucket): one second is 10 of Qomon's 100 tokens, once per backlog."""
    qomon_max_attempts: Annotated[int, Field(ge=1, le=20)] = 5
    qomon_search_group_size: Annotated[int, Field(ge=1, le=1000)] = 100
    """E-mails looked up in one search (an `$at_least_one` group of conditions). Qomon
    documents no limit on a group's conditions, only pages of up to 1,000 contacts at 1
    token each: a search it refuses is asked again in halves (adapters/qomon/client.py
    `find_contacts_by_emails`)."""

    unknown_fields_passthrough: FieldPaths = frozenset({"address.citycode"})
    """Fields Qomon returns that no schema lists, to send back unchanged (comma-separated
    paths such as `external_id,address.citycode`). Others stop the write."""
    unknown_fields_droppable: FieldPaths = frozenset()
    """Unknown fields that may knowingly be left out (and so deleted by the PATCH)."""
    allow_unblacklist: bool = False
    allow_refusal_withdrawal: bool = False
    refusal_pattern: str = DEFAULT_REFUSAL_PATTERN

    @field_validator("unknown_fields_passthrough", "unknown_fields_droppable", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return frozenset(part.strip() for part in value.split(",") if part.strip())
        return value

    @property
    def idempotency_expiry_s(self) -> int:
        return self.ledger_retention_days * 86_400

    def assembly_policy(self) -> AssemblyPolicy:
        return AssemblyPolicy(
            shape=ShapePolicy(
                passthrough=self.unknown_fields_passthrough, droppable=self.unknown_fields_droppable
            ),
            allow_unblacklist=self.allow_unblacklist,
            allow_refusal_withdrawal=self.allow_refusal_withdrawal,
            refusal_pattern=self.refusal_pattern,
        )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
