"""What a warm sync function keeps between invocations, built once from the settings."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import boto3
import httpx
from botocore.config import Config

from qomon_sync.adapters.contact_lease import ContactLeases, HeldContacts, OneWriter
from qomon_sync.adapters.dead_letters import DeadLetterQueue
from qomon_sync.adapters.dry_run import DryRun
from qomon_sync.adapters.flush_markers import FlushMarkers
from qomon_sync.adapters.ledger import EventLedger
from qomon_sync.adapters.qomon import Deadline, QomonClient, RetryPolicy
from qomon_sync.adapters.qomon.client import CallStats
from qomon_sync.adapters.qomon.port import QomonContacts, fetch_forms
from qomon_sync.adapters.secrets import MissingApiKey, deployment_pseudonyms, qomon_api_key
from qomon_sync.adapters.settled_messages import SettledMessages
from qomon_sync.adapters.shared_bucket import SharedBucket
from qomon_sync.adapters.space_cache import (
    LookedUp,
    MailCache,
    RememberedContacts,
    SharedForms,
    WaitingLookups,
)
from qomon_sync.adapters.space_pause import SpacePauses, place_of
from qomon_sync.adapters.staging import StagingTable
from qomon_sync.domain.contact_sync import QomonPort
from qomon_sync.domain.forms import FormCatalog
from qomon_sync.domain.privacy import Pseudonyms
from qomon_sync.settings import Settings

OnCall = Callable[[str, int | None, float], None]
QUICK_TO_GIVE_UP = Config(
    connect_timeout=2, read_timeout=3, retries={"max_attempts": 2, "mode": "standard"}
)


@dataclass
class SyncRuntime:
    settings: Settings
    sqs: Any
    dynamodb: Any
    ledger: EventLedger | None
    dead_letters: DeadLetterQueue
    staging: StagingTable
    markers: FlushMarkers
    mails: MailCache
    pseudonyms: Pseudonyms
    on_call: OnCall | None = None
    settled: SettledMessages | None = None
    """Deletes settled contacts' messages before the batch ends (None: left to Lambda)."""
    transport: httpx.BaseTransport | None = None
    """How the Qomon client's requests travel (None: the network; tests and the soak wrap it)."""
    on_staged: Callable[[str], None] | None = None
    """Dev only (the soak): called with the group once its events are staged, before the
    flush or the marker; what it raises ends the invocation there."""
    pauses: SpacePauses | None = None
    """The space-wide pause (None: never paused, as in tests that build a runtime bare)."""
    _client: QomonClient | None = None
    _client_key: str | None = None
    _forms: SharedForms | None = None
    _leases: ContactLeases | None = None
    _waiting: WaitingLookups | None = None

    def client(self) -> QomonClient:
        key = qomon_api_key(self.settings.qomon_api_key_secret)
        if self._client is None or key != self._client_key:
            # The bucket is the API key's (Qomon counts tokens per key), and so is the
            # item every instance books on; the forms belong to the space behind it.
            space = hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]
            settings = self.settings
            bucket = self._bucket(space)
            self._client = QomonClient(
                str(settings.qomon_base_url),
                key,
                connect_timeout_s=settings.qomon_connect_timeout_s,
                read_timeout_s=settings.qomon_read_timeout_s,
                bucket=bucket,
                retry=RetryPolicy(max_attempts=settings.qomon_max_attempts),
                transport=self.transport,
                on_call=self.on_call,
                search_group_size=settings.qomon_search_group_size,
            )
            self._forms = SharedForms(
                self.dynamodb, self.staging.table, space, ttl_s=settings.forms_cache_s
            )
            self._waiting = WaitingLookups(
                self.dynamodb, self.staging.table, space, ttl_s=settings.staging_max_age_s
            )
            # Contact ids belong to the space behind the key, and a rotated key is picked
            # up by each instance in its own time: the leases are keyed by what does not
            # change with the key (the space's URL), so that old-key and new-key instances
            # still exclude each other.
            place = place_of(str(settings.qomon_base_url))
            self._leases = ContactLeases(self.dynamodb, self.staging.table, place)
            self._client_key = key
        return self._client

    def _bucket(self, space: str) -> SharedBucket:
        settings = self.settings
        return SharedBucket(
            self.dynamodb,
            self.staging.table,
            space,
            capacity=settings.qomon_bucket_size,
            refill_per_s=settings.qomon_refill_per_s,
            headroom_s=settings.qomon_bucket_headroom_s,
        )

    def key_changed(self) -> bool:
        """Whether the secret holds another key than the client's (read afresh, past the
        cache): a 401 met with a key an operator has already replaced is no reason to pause."""
        try:
            key = qomon_api_key(self.settings.qomon_api_key_secret, fresh=True)
        except MissingApiKey:
            return False
        return self._client_key is not None and key != self._client_key

    def probe_client(self) -> QomonClient:
        """A client for the pause's probe: the key read afresh (an operator may just have
        put a new one), one attempt (a probe is one call), booked on the shared bucket."""
        key = qomon_api_key(self.settings.qomon_api_key_secret, fresh=True)
        settings = self.settings
        return QomonClient(
            str(settings.qomon_base_url),
            key,
            connect_timeout_s=settings.qomon_connect_timeout_s,
            read_timeout_s=settings.qomon_read_timeout_s,
            bucket=self._bucket(hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]),
            retry=RetryPolicy(max_attempts=1),
            transport=self.transport,
            on_call=self.on_call,
        )

    @property
    def usage(self) -> CallStats | None:
        """What the Qomon client has spent since it was built (None before the first flush
        needs it)."""
        return self._client.stats if self._client is not None else None

    def forms(self, client: QomonClient, deadline: Deadline) -> FormCatalog:
        self.client()
        assert self._forms is not None
        return self._forms.get(lambda: fetch_forms(client, deadline))

    def waiting_lookups(self) -> WaitingLookups:
        """The groups whose e-mail waits for one search of many (application.mail_lookup)."""
        self.client()
        assert self._waiting is not None
        return self._waiting

    def one_writer(self, deadline: Deadline, *, keep_s: float) -> OneWriter:
        """The lease one flush holds on its contact, as long as its invocation may run."""
        self.client()
        assert self._leases is not None
        return OneWriter(
            self._leases, deadline, after_deadline_s=self.settings.safety_margin_s, keep_s=keep_s
        )

    def port(
        self,
        client: QomonClient,
        deadline: Deadline,
        log: Callable[..., None],
        writer: OneWriter | None = None,
        looked_up: LookedUp | None = None,
    ) -> QomonPort:
        port: QomonPort = QomonContacts(client, deadline)
        if writer is not None:
            # Inside the remembered e-mails: their check reads the contact, under its lease.
            port = HeldContacts(port, writer, book=client.bucket.book_planned)
        port = RememberedContacts(port, self.mails, looked_up)
        settings = self.settings
        if settings.dry_run:
            # Values only on an explicit local-mode flag, never inside AWS Lambda.
            show = settings.dry_run_show_values and not settings.aws_execution_env
            port = DryRun(port, log, pseudonyms=self.pseudonyms, show_values=show)
        return port


def build_runtime(settings: Settings, on_call: OnCall | None = None) -> SyncRuntime:
    sqs = boto3.client("sqs")
    dynamodb = boto3.client("dynamodb")
    pseudonyms = deployment_pseudonyms(settings.pseudonym_key_secret)
    return SyncRuntime(
        settings=settings,
        sqs=sqs,
        dynamodb=dynamodb,
        ledger=None
        if settings.dry_run
        else EventLedger(
            settings.idempotency_table, expiry_s=settings.idempotency_expiry_s, dynamodb=dynamodb
        ),
        dead_letters=DeadLetterQueue(sqs, settings.dead_letter_queue_url),
        staging=StagingTable(
            dynamodb, settings.staging_table, retention_s=settings.idempotency_expiry_s
        ),
        markers=FlushMarkers(sqs, settings.changes_queue_url),
        mails=MailCache(
            dynamodb, settings.staging_table, ttl_s=settings.email_cache_s, pseudonyms=pseudonyms
        ),
        pseudonyms=pseudonyms,
        on_call=on_call,
        pauses=SpacePauses(
            dynamodb, settings.staging_table, place_of(str(settings.qomon_base_url))
        ),
        settled=SettledMessages(
            # Its own client, quick to give up: the delete is only an optimisation, and
            # must never be what uses up the invocation.
            boto3.client("sqs", config=QUICK_TO_GIVE_UP),
            settings.changes_queue_url,
        ),
    )
