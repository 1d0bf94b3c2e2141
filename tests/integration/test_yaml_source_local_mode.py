"""A source added in YAML alone (a made-up service, Acme, with a hex HMAC-SHA256 of the
body in a header) receives its delivery end to end in local mode: over HTTP, through the
queue and the sync, into the stand-in. No module, no registry line, no signer."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
import yaml

from qomon_sync_dev.local_lambda import REGION, STACK
from qomon_sync_dev.local_mode import LOCAL_WEBHOOK_SECRETS, LocalMode, LocalOptions
from tests.conftest import EVENTS
from tests.unit.webhooks import SOURCES_YAML

pytestmark = pytest.mark.integration
LEA = 700124
SECRET = "local-acme-secret"
ACME = {
    "preset": "json",
    "auth": {"scheme": "hmac-sha256", "header": "X-Acme-Signature", "encoding": "hex"},
    "event_type": "type",
    "event_id": "id",
    "occurred_at": "created_at",
    "contact": {"mail": "member.email"},
    "events": {
        "member.signed_up": {
            "set": {"firstname": "member.first_name"},
            "fields": [{"answer": "member.job", "field": "Profession"}],
            "tags": {"add": ["acme"]},
            "notes": ["Acme : {answer.comment}"],
        }
    },
}


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalMode]:
    config = yaml.safe_load(SOURCES_YAML.read_text(encoding="utf-8"))
    config["sources"]["acme"] = ACME
    path: Path = tmp_path_factory.mktemp("acme") / "sources.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("SOURCES_CONFIG", str(path))
        with LocalMode(LocalOptions(visibility_timeout_s=2)) as running:
            assert running.endpoints is not None
            # The deployment's secret, with Acme's entry added as an operator would.
            boto3.client(
                "secretsmanager", endpoint_url=running.endpoints.aws_endpoint_url,
                region_name=REGION, aws_access_key_id="local", aws_secret_access_key="local",
            ).put_secret_value(
                SecretId=f"{STACK}/webhook-secrets",
                SecretString=json.dumps({**LOCAL_WEBHOOK_SECRETS, "acme": SECRET}),
            )  # fmt: skip
            yield running


def contact(local: LocalMode) -> dict[str, Any]:
    assert local.endpoints is not None
    answer = httpx.get(f"{local.endpoints.qomon_url}/_standin/contacts/{LEA}", timeout=10)
    return dict(answer.json()["contact"])


def test_a_yaml_only_source_is_received_end_to_end(local: LocalMode) -> None:
    assert local.endpoints is not None
    body = (EVENTS / "webhooks" / "acme" / "signup.json").read_bytes()
    signature = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    url = local.endpoints.webhook_url.format(source="acme")
    headers = {"content-type": "application/json", "x-acme-signature": signature}

    forged = httpx.post(url, content=body, headers={**headers, "x-acme-signature": "0" * 64})
    assert forged.status_code == 401
    assert forged.headers["content-type"] == "application/problem+json"
    response = httpx.post(url, content=body, headers=headers, timeout=30)

    assert response.status_code == 202, response.text
    assert response.json()["event_ids"] == ["acme-evt_01HZX4K9V2"]
    deadline = time.monotonic() + 30
    while "acme" not in json.dumps(contact(local).get("tags")) and time.monotonic() < deadline:
        time.sleep(0.3)
    found = contact(local)
    assert "acme" in json.dumps(found["tags"], ensure_ascii=False)
    assert found["firstname"] == "Léa"
    assert "Acme : Disponible le samedi matin." in json.dumps(found, ensure_ascii=False)
