"""Webhook requests for the source tests: the documented example bodies, and signatures
computed here (with the standard library, or the Standard Webhooks package's own signer),
never copied from anywhere."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from standardwebhooks.webhooks import Webhook

from qomon_sync.domain.change_event import ChangeEvent
from qomon_sync.sources.base import WebhookRequest
from qomon_sync.sources.config import MappingConfig
from qomon_sync.sources.registry import load_mapping
from tests.conftest import EVENTS, ROOT

WEBHOOKS = EVENTS / "webhooks"
SOURCES_YAML = ROOT / "functions" / "sources.yaml"
NOW = datetime(2026, 11, 20, 18, 2, 11, tzinfo=UTC)


def example(name: str) -> bytes:
    """A documented example body, byte for byte as stored."""
    return (WEBHOOKS / name).read_bytes()


def example_json(name: str) -> Any:
    return json.loads(example(name))


def as_body(payload: Any) -> bytes:
    return json.dumps(payload, ensure_ascii=False).encode("utf-8")


def deployment_config() -> MappingConfig:
    return load_mapping(SOURCES_YAML)


def request(
    source: str,
    body: bytes,
    headers: dict[str, str] | None = None,
    received_at: datetime = NOW,
) -> WebhookRequest:
    return WebhookRequest(
        source=source,
        body=body,
        headers={k.lower(): v for k, v in (headers or {}).items()},
        received_at=received_at,
    )


def hmac_base64(secret: str, body: bytes) -> str:
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def typeform_headers(secret: str, body: bytes) -> dict[str, str]:
    return {"Typeform-Signature": f"sha256={hmac_base64(secret, body)}"}


def tally_headers(secret: str, body: bytes) -> dict[str, str]:
    return {"Tally-Signature": hmac_base64(secret, body)}


def standard_webhooks_headers(
    secret: str, body: bytes, *, msg_id: str = "msg_2mXq", sent_at: datetime = NOW
) -> dict[str, str]:
    signature = Webhook(secret).sign(msg_id=msg_id, timestamp=sent_at, data=body.decode("utf-8"))
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(sent_at.timestamp())),
        "webhook-signature": signature,
    }


def dumped(events: list[ChangeEvent]) -> list[dict[str, Any]]:
    """Events as the ingest handler queues them (only what the event says)."""
    return [e.model_dump(mode="json", exclude_none=True, exclude_unset=True) for e in events]


def read(path: Path) -> str:
    return path.read_text(encoding="utf-8")
