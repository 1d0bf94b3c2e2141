"""The `hubspot` preset's source class: HubSpot's webhooks, read by the json preset with
the keys of presets.yaml's `hubspot` entry (signature, events, answers, id), plus the one
thing selectors cannot do: find the contact's e-mail. `registry.PRESETS` names it.

A HubSpot event (https://developers.hubspot.com/docs/api/webhooks) names its contact by
HubSpot's `objectId` only. A delivery batches the events of a moment, and when the app
subscribes to the `email` property, the contact's `email` change comes with them: its
value is the e-mail of every event of that `objectId` in the delivery (the answer
`hubspot_email`). An event whose contact's e-mail is not in its delivery is acknowledged
and changes nothing (`without_contact: ignore`), rather than making HubSpot retry the
whole batch.

Its keys, the id rule among them (`eventId` with a digest, `attemptNumber` left out), are
presets.yaml's, with the reasons beside them.
"""

from __future__ import annotations

from typing import Any

from qomon_sync.domain.change_event import ChangeEvent
from qomon_sync.sources.base import WebhookRequest
from qomon_sync.sources.json_source import JsonSource

EMAIL_ANSWER = "hubspot_email"


class HubSpotSource(JsonSource):
    def change_events(self, request: WebhookRequest) -> list[ChangeEvent]:
        items = self.items(self.parse(request))
        emails = _emails(item for item, _ in items)
        events: dict[str, ChangeEvent] = {}
        for item, path in items:
            email = emails.get(_object_id(item) or "")
            extra = {EMAIL_ANSWER: email} if email else {}
            event = self.change_event(item, path, request, extra=extra)
            if event is not None:
                events.setdefault(event.event_id, event)
        return list(events.values())


def _object_id(item: Any) -> str | None:
    value = item.get("objectId") if isinstance(item, dict) else None
    return str(value) if isinstance(value, int | str) and not isinstance(value, bool) else None


def _emails(items: Any) -> dict[str, str]:
    found: dict[str, str] = {}
    for item in items:
        if not isinstance(item, dict) or item.get("propertyName") != "email":
            continue
        value, object_id = item.get("propertyValue"), _object_id(item)
        if object_id and isinstance(value, str) and value.strip():
            found[object_id] = value.strip()
    return found
