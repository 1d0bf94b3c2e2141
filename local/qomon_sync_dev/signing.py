"""Sign webhook deliveries the way each sender does (dev-only: demo, tests, soak)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from datetime import UTC, datetime

from standardwebhooks.webhooks import Webhook


def standard_webhooks(
    secret: str, body: bytes, *, msg_id: str | None = None, at: datetime | None = None
) -> dict[str, str]:
    """`webhook-id`, `webhook-timestamp`, `webhook-signature` (the generic source)."""
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    at = at or datetime.now(UTC)
    signature = Webhook(secret).sign(msg_id, at, body.decode("utf-8"))
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signature,
    }


def typeform(secret: str, body: bytes) -> dict[str, str]:
    """`Typeform-Signature: sha256=<base64 HMAC-SHA256 of the body>`."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    return {"typeform-signature": "sha256=" + base64.b64encode(digest).decode()}


def tally(secret: str, body: bytes) -> dict[str, str]:
    """`Tally-Signature: <base64 HMAC-SHA256 of the body>`."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    return {"tally-signature": base64.b64encode(digest).decode()}


def brevo(token: str, body: bytes) -> dict[str, str]:
    """Brevo sends the token configured on the webhook as a bearer token."""
    return {"authorization": f"Bearer {token}"}


SIGNERS = {"generic": standard_webhooks, "typeform": typeform, "tally": tally, "brevo": brevo}


def sign(source: str, secret: str, body: bytes) -> dict[str, str]:
    return SIGNERS[source](secret, body)
