"""The sync's use case: a batch of queue messages in, every event settled or kept waiting.

Between the handlers (Powertools wiring, event in, response out) and the domain and
adapters: it stages each contact's events (adapters.staging), decides when a contact's
backlog is complete, and flushes it in one read-modify-write (domain.contact_sync) paced
by the space's shared token bucket. It imports domain and adapters, never handlers; the
handler hands it a Telemetry for logs and metrics.
"""
