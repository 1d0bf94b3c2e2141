"""The `hubspot` preset: HubSpot's webhooks, read by the json preset, plus the one thing
selectors cannot do: find the contact's e-mail. This module is the whole preset: its keys
(`JSON_PRESET_DEFAULTS`, as a presets.yaml entry would hold them) and its source class;
the registry finds it by itself.

HubSpot webhooks (https://developers.hubspot.com/docs/api/webhooks): a list of up to 100
events; v3 signature: base64 HMAC-SHA256 of method + URI + body + timestamp
(X-HubSpot-Request-Timestamp, milliseconds), refused after 5 minutes. An event names
the contact by its HubSpot id only: `sources/hubspot.py` finds its e-mail in the same
delivery (the `email` property change HubSpot sends with it).

A HubSpot event names its contact by HubSpot's `objectId` only. A delivery batches the
events of a moment, and when the app subscribes to the `email` property, the contact's
`email` change comes with them: its value is the e-mail of every event of that `objectId`
in the delivery (the answer `hubspot_email`). An event whose contact's e-mail is not in
its delivery is acknowledged and changes nothing (`without_contact: ignore`), rather than
making HubSpot retry the whole batch.

An event's id: HubSpot documents `eventId` as "not guaranteed to be unique" (two property
changes of one contact may share one), and `attemptNumber` as counting its retries. So the
id is `hubspot-<eventId>-<digest>`, the digest that of the event less `attemptNumber`
(`event_id_unique: false`, `attempt_fields`): two changes sharing an `eventId` stay two,
and a retry, whatever its attempt, keeps its id.
"""

from __future__ import annotations

from typing import Any

from qomon_sync.domain.change_event import ChangeEvent
from qomon_sync.sources.base import WebhookRequest
from qomon_sync.sources.config import read_yaml
from qomon_sync.sources.json_source import JsonSource

EMAIL_ANSWER = "hubspot_email"
JSON_PRESET = "hubspot"
JSON_PRESET_DEFAULTS = read_yaml(
    """
    auth:
      scheme: hmac-sha256
      header: X-HubSpot-Signature-v3
      encoding: base64
      signed: "{method}{uri}{body}{timestamp}"
      timestamp_header: X-HubSpot-Request-Timestamp
      timestamp_unit: ms
      window_s: 300
      decoded_uri: true
    each: "@"
    event_type: "subscriptionType || eventType"
    event_id: eventId
    event_id_unique: false
    attempt_fields: [attemptNumber]
    occurred_at: occurredAt
    occurred_at_format: unix_ms
    answers:
      firstname: "[@][?propertyName == 'firstname'].propertyValue | [0]"
      lastname: "[@][?propertyName == 'lastname'].propertyValue | [0]"
      phone: "[@][?propertyName == 'phone'].propertyValue | [0]"
      mobile: "[@][?propertyName == 'mobilephone'].propertyValue | [0]"
      city: "[@][?propertyName == 'city'].propertyValue | [0]"
    contact: {mail: hubspot_email}
    events:
      contact.creation:
        without_contact: ignore
      contact.propertyChange:
        set:
          firstname: firstname
          surname: lastname
          phone: phone
          mobile: mobile
          address.city: city
        without_contact: ignore
""",
    f"{__name__}.JSON_PRESET_DEFAULTS",
)


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


SOURCE = HubSpotSource
