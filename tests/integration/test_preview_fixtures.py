"""The preview example files are what the seeded stand-in really serves (no drift)."""

from __future__ import annotations

import json

import httpx
import pytest

from qomon_sync.domain.forms import FORM_FAMILIES
from qomon_sync_dev.standin.config import StandinConfig
from qomon_sync_dev.standin.server import StandinServer
from tests.conftest import EVENTS

pytestmark = pytest.mark.integration


def test_preview_fixtures_match_the_seeded_standin() -> None:
    with (
        StandinServer(StandinConfig(token="t")) as server,
        httpx.Client(base_url=server.url, headers={"Authorization": "Bearer t"}) as http,
    ):
        contact = http.get("/contacts/700103").json()
        forms = [
            f
            for family in FORM_FAMILIES
            for f in http.get(f"/v1/forms/type/{family}").json()["data"]["forms"]
        ]
    assert json.loads((EVENTS / "preview" / "contact-700103.json").read_text()) == contact
    assert json.loads((EVENTS / "preview" / "forms.json").read_text())["data"]["forms"] == forms
