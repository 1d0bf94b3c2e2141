"""Dry run: a Qomon port that reads but never writes, and logs what it would send.

What it logs is the body's structure, never a person's values: every key, every list with
its length, and in place of each value its type. An answer's form_ref_id (which value
was chosen: a consent, a level of support, a political opinion) is masked like the rest;
the changed paths are logged by the handler, tag names reduced to a digest. Values are
shown only when local mode asks for them explicitly (`dry_run_show_values`), which the
handler never honours inside AWS Lambda.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from qomon_sync.domain.contact_shape import WriteContact
from qomon_sync.domain.contact_sync import QomonPort
from qomon_sync.domain.privacy import Pseudonyms


def structure(value: Any) -> Any:
    """`value` with every scalar replaced by its JSON type's name."""
    if isinstance(value, dict):
        return {key: structure(part) for key, part in value.items()}
    if isinstance(value, list):
        return [structure(item) for item in value]
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return "text"


class DryRun:
    """A port that reads from Qomon but never writes: it logs what it would send."""

    def __init__(
        self,
        qomon: QomonPort,
        log: Callable[..., None],
        *,
        pseudonyms: Pseudonyms,
        show_values: bool = False,
    ) -> None:
        self._qomon = qomon
        self._log = log  # the handler's logger.info: adapters do not import handlers
        self._pseudonyms = pseudonyms
        self._show_values = show_values

    def find_by_email(self, mail: str) -> list[dict[str, Any]]:
        return self._qomon.find_by_email(mail)

    def get(self, contact_id: int) -> dict[str, Any] | None:
        return self._qomon.get(contact_id)

    def replace(self, contact_id: int, contact: WriteContact) -> dict[str, Any]:
        self._show("replace", contact_id, contact)
        return {**contact, "id": contact_id}

    def create(self, contact: WriteContact) -> dict[str, Any]:
        self._show("create", None, contact)
        return {**contact, "id": 0}

    def _show(self, verb: str, contact_id: int | None, contact: WriteContact) -> None:
        mail = contact.get("mail")
        self._log(
            "dry run: not written",
            extra={
                "verb": verb,
                "contact_id": contact_id,
                "body": dict(contact) if self._show_values else structure(contact),
                "mail": self._pseudonyms(mail) if isinstance(mail, str) else None,
            },
        )
