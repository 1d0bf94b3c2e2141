"""What a webhook source is: how it authenticates a delivery, and what the delivery says.

A source is built from its preset, which `sources/registry.py` `PRESETS` names with its
configuration model and its class: most presets are YAML of `presets.yaml` read by the
json preset's `JsonSource` (HubSpot's by a subclass of it); the form tools (`form_tool.py`),
Brevo and the generic change events are classes of their own. The mapping file gives
each source a name and a configuration; several sources may share a preset. The ingest
handler hands a source the raw request (bytes, as signed) and the source's secret; the
source answers with change events v1, or raises one of the errors below, which the
handler turns into problem JSON.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from qomon_sync.domain.change_event import ChangeEvent


@dataclass(frozen=True)
class WebhookRequest:
    source: str
    body: bytes
    """Exactly the bytes received: signatures are computed over them, never over a re-encoding."""
    headers: Mapping[str, str]
    """Header names lower-cased."""
    received_at: datetime
    query: Mapping[str, str] = field(default_factory=dict)
    """The query string's parameters (API Gateway's `queryStringParameters`)."""
    method: str = "POST"
    uri: str = ""
    """The URL as the sender called it (`https://<host>/webhooks/<source>?<query>`)."""


class WebhookError(Exception):
    """A delivery refused; `status` and `field` become the problem JSON's."""

    status = 400
    title = "Bad webhook"

    def __init__(self, detail: str, *, field: str | None = None) -> None:
        self.detail = detail
        self.field = field
        super().__init__(detail)


class Unauthenticated(WebhookError):
    """Missing, malformed, stale, replayed or wrong signature or token: never passes."""

    status = 401
    title = "Webhook not authenticated"


class BadPayload(WebhookError):
    """The body is not what this source sends (names the field at fault)."""

    status = 400
    title = "Webhook body not understood"


class NoContact(WebhookError):
    """A valid delivery that names no contact (no Qomon id, no e-mail)."""

    status = 422
    title = "Webhook names no contact"


class Authenticator(Protocol):
    """How a source's deliveries are authenticated (`sources/signatures.py`): one scheme,
    which also signs a request as the sender would (local mode, the demo, the tests)."""

    @property
    def scheme(self) -> str: ...

    def sign(self, secret: str, request: WebhookRequest) -> WebhookRequest:
        """`request` with the sender's credentials added (headers, query or body)."""
        ...


class Source(Protocol):
    name: str

    @property
    def auth(self) -> Authenticator:
        """The source's scheme (`sources/signatures.py`)."""
        ...

    def authenticate(self, request: WebhookRequest, secret: str) -> None:
        """Raise Unauthenticated unless the request is provably from the sender."""

    def delivery_id(self, request: WebhookRequest) -> str | None:
        """The sender's own id for this delivery (kept by its retries), if it has one."""

    def change_events(self, request: WebhookRequest) -> list[ChangeEvent]:
        """The delivery as change events v1; raise BadPayload or NoContact."""
