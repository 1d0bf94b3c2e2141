"""Sign webhook deliveries the way each sender does (dev-only: local mode, demo, tests, soak).

Nothing here knows a sender: each source's `auth` (sources/signatures.py, from its preset
or the mapping file) signs as it checks, and the sources are the deployment's, from the
registry. A source added in YAML is signed, given a local secret, sent by the demo and
fuzzed without a line here.
"""

from __future__ import annotations

import base64
import urllib.parse
from dataclasses import replace
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

from qomon_sync.sources.base import Source, WebhookRequest
from qomon_sync.sources.registry import build_sources, load_mapping

ROOT = Path(__file__).resolve().parents[2]
SOURCES_YAML = ROOT / "functions" / "sources.yaml"
LOCAL_GENERIC_SECRET = "whsec_" + base64.b64encode(b"qomon-sync local generic secret!").decode()


@cache
def deployment_sources(path: Path = SOURCES_YAML) -> dict[str, Source]:
    """The sources of a mapping file (the deployment's by default), `generic` included."""
    return build_sources(load_mapping(path))


def local_secret(name: str, source: Source) -> str:
    """A local-only secret of the form the source's scheme takes."""
    if source.auth.scheme == "standard-webhooks":
        return LOCAL_GENERIC_SECRET if name == "generic" else _whsec(name)
    return f"local-{name}-secret"


def _whsec(name: str) -> str:
    return "whsec_" + base64.b64encode(f"qomon-sync local {name} secret".encode()).decode()


def local_webhook_secrets(path: Path = SOURCES_YAML) -> dict[str, str]:
    """One local secret per source of the mapping file (AWS: the WebhookSecrets secret)."""
    return {name: local_secret(name, source) for name, source in deployment_sources(path).items()}


def signed_request(
    source: Source,
    secret: str,
    body: bytes,
    *,
    url: str = "https://127.0.0.1/webhooks/{source}",
    method: str = "POST",
    headers: dict[str, str] | None = None,
    at: datetime | None = None,
) -> WebhookRequest:
    """`body` sent to `url` as the source's sender sends it: its headers, query and body
    carry the credentials. `url` may hold `{source}`; its query string is kept."""
    url = url.format(source=source.name)
    base, _, query = url.partition("?")
    request = WebhookRequest(
        source=source.name,
        body=body,
        headers={k.lower(): v for k, v in (headers or {}).items()},
        received_at=at or datetime.now(UTC),
        query=dict(urllib.parse.parse_qsl(query)),
        method=method,
        uri=url,
    )
    signed = source.auth.sign(secret, request)
    if signed.query != request.query:
        query = urllib.parse.urlencode(dict(signed.query))
        signed = replace(signed, uri=f"{base}?{query}")
    return signed


def sign(name: str, secret: str, body: bytes) -> dict[str, str]:
    """The headers that sign `body` for the deployment's source `name` (schemes whose
    credentials are all in headers)."""
    return dict(signed_request(deployment_sources()[name], secret, body).headers)


def standard_webhooks(
    secret: str, body: bytes, *, msg_id: str | None = None, at: datetime | None = None
) -> dict[str, str]:
    """`webhook-id`, `webhook-timestamp`, `webhook-signature` (the generic source)."""
    headers = {"webhook-id": msg_id} if msg_id else None
    source = deployment_sources()["generic"]
    return dict(signed_request(source, secret, body, headers=headers, at=at).headers)
