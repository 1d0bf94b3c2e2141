"""The sync function's SQS event source mapping: whether Lambda takes batches from the queue.

The circuit breaker of the pause (application.pause): while the space is paused the probe
function disables the mapping, so that no instance receives (and no message spends a
receive count), and enables it again when Qomon answers. Only the stack's own mapping:
its UUID comes from the template (`!Ref SyncFunctionChanges`), and the probe's role may
update that one mapping only. Local mode's AWS answers the same two calls for its poller.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

ON = frozenset({"Enabled", "Enabling", "Creating"})
"""Lambda's states in which the mapping takes, or is about to take, batches."""


class EventSourceMapping:
    def __init__(self, lambda_client: Any, uuid: str) -> None:
        self._lambda = lambda_client
        self.uuid = uuid

    def enabled(self) -> bool:
        state = self._lambda.get_event_source_mapping(UUID=self.uuid).get("State", "")
        return str(state) in ON

    def switch(self, *, on: bool) -> bool:
        """Enable or disable it; False when Lambda is still moving it (try next time)."""
        try:
            self._lambda.update_event_source_mapping(UUID=self.uuid, Enabled=on)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ResourceInUseException":
                return False
            raise
        return True
