"""The client seen through the domain's QomonPort, bound to one caller's deadline."""

from __future__ import annotations

from typing import Any

from qomon_sync.adapters.qomon.client import QomonClient
from qomon_sync.adapters.qomon.errors import QomonNotFound
from qomon_sync.adapters.qomon.pacing import Deadline
from qomon_sync.domain.contact_shape import WriteContact
from qomon_sync.domain.forms import FORM_FAMILIES, FormCatalog


class QomonContacts:
    """Implements domain.contact_sync.QomonPort: every call shares the caller's deadline."""

    def __init__(self, client: QomonClient, deadline: Deadline) -> None:
        self.client = client
        self.deadline = deadline

    def find_by_email(self, mail: str) -> list[dict[str, Any]]:
        return self.client.find_contacts_by_email(mail, deadline=self.deadline)

    def get(self, contact_id: int) -> dict[str, Any] | None:
        try:
            return self.client.get_contact(contact_id, deadline=self.deadline)
        except QomonNotFound:
            return None

    def replace(self, contact_id: int, contact: WriteContact) -> dict[str, Any]:
        return self.client.replace_contact(contact_id, contact, deadline=self.deadline)

    def create(self, contact: WriteContact) -> dict[str, Any]:
        return self.client.create_contact(contact, deadline=self.deadline)


def fetch_forms(client: QomonClient, deadline: Deadline) -> FormCatalog:
    """Every form of the space (one call per family: forms change only in Qomon's UI,
    so callers cache the catalog rather than paying these tokens per contact)."""
    return FormCatalog(
        form for family in FORM_FAMILIES for form in client.list_forms(family, deadline=deadline)
    )
