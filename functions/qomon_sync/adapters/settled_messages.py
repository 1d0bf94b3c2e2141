"""Deleting a batch's settled messages before the batch ends.

Lambda deletes a batch's messages only when the invocation returns. If it never returns
(a crash, a timeout, out of memory), every message of the batch comes back and counts one
more receive, including those of contacts already settled: a contact whose flush crashes
on every delivery would take its neighbours in the batch to the dead-letter queue with it,
moved by the redrive policy without a reason. So the sync deletes the messages of the
contacts it has settled before it starts another contact's flush (application.sync_batch).

This is an optimisation of who pays for a crash, never a condition of correctness: the
invocation's own report deletes the same messages again (SQS takes a second delete of a
deleted message), so a delete that fails here is only logged.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from qomon_sync.adapters.changes_queue import MAX_BATCH_ENTRIES


class SettledMessages:
    def __init__(self, sqs: Any, queue_url: str) -> None:
        self._sqs = sqs
        self._url = queue_url

    def delete(self, receipt_handles: Sequence[str]) -> int:
        """Delete these messages from the changes queue now; returns how many were not
        (left to the invocation's report). Never raises."""
        failed = 0
        for start in range(0, len(receipt_handles), MAX_BATCH_ENTRIES):
            chunk = receipt_handles[start : start + MAX_BATCH_ENTRIES]
            try:
                answer = self._sqs.delete_message_batch(
                    QueueUrl=self._url,
                    Entries=[
                        {"Id": str(n), "ReceiptHandle": handle} for n, handle in enumerate(chunk)
                    ],
                )
            except (BotoCoreError, ClientError):
                failed += len(chunk)
                continue
            failed += len(answer.get("Failed") or [])
        return failed
