"""The Qomon API key, the pseudonym key and the webhook secrets, read from Secrets Manager
at run time and cached by Powertools."""

from __future__ import annotations

import json

from aws_lambda_powertools.utilities import parameters

from qomon_sync.domain.privacy import Pseudonyms

KEY_CACHE_S = 300
"""A rotated key or webhook secret is picked up within five minutes without a cold start."""
UNSET = "REPLACE_ME"
"""What the stack writes into a secret an operator has still to fill in."""


class MissingApiKey(RuntimeError):
    pass


def qomon_api_key(secret_id: str, *, fresh: bool = False) -> str:
    """The key stored as the secret's text, or as JSON `{"api_key": "..."}`; `fresh`
    reads it from Secrets Manager past the cache (and caches what it read)."""
    raw = parameters.get_secret(secret_id, max_age=KEY_CACHE_S, force_fetch=fresh)
    text = raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)
    key = text.strip()
    if key.startswith("{"):
        try:
            key = str(json.loads(key).get("api_key", "")).strip()
        except (ValueError, AttributeError):
            raise MissingApiKey(f"secret {secret_id} is JSON without a string `api_key`") from None
    if not key or key == UNSET:
        raise MissingApiKey(f"secret {secret_id} holds no Qomon API key yet")
    return key


def pseudonym_key(secret_id: str) -> str:
    """The deployment's pseudonym key (the stack generates it; local mode makes its own)."""
    raw = parameters.get_secret(secret_id, max_age=KEY_CACHE_S)
    return (raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)).strip()


def deployment_pseudonyms(secret_id: str) -> Pseudonyms:
    """The deployment's pseudonyms, keyed by the secret (read when first needed, cached)."""
    return Pseudonyms(lambda: pseudonym_key(secret_id))


def webhook_secret(secret_id: str, source: str) -> str | None:
    """`source`'s secret or token, from the secret's JSON `{"<source>": "<secret>", ...}`;
    None while it has none (absent, empty, not a text, or still REPLACE_ME): the ingest
    then lets nothing through for that source."""
    secrets = parameters.get_secret(secret_id, transform="json", max_age=KEY_CACHE_S)
    value = secrets.get(source) if isinstance(secrets, dict) else None
    return value if isinstance(value, str) and value and value != UNSET else None
