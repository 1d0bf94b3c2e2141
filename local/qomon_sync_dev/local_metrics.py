"""Local mode's CloudWatch: the functions' metrics, published to the local AWS.

In AWS, the functions print their metrics as EMF lines and CloudWatch turns those into
metrics (namespace QomonSync). Local mode plays that part: every EMF blob Powertools
serialises is also put, from a background thread, into moto's CloudWatch, so
`qomon-sync status --local` reads the last hour with the same GetMetricData queries as
against a stack. Nothing is kept across a restart (moto's CloudWatch lives in memory).
"""

from __future__ import annotations

import contextlib
import queue
import threading
from datetime import UTC, datetime
from typing import Any

import boto3
from aws_lambda_powertools.metrics.base import MetricManager
from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import (
    AmazonCloudWatchEMFProvider,
)

SERIALIZERS: tuple[type, ...] = (AmazonCloudWatchEMFProvider, MetricManager)
"""Powertools' two EMF serialisers: the Metrics provider, and `single_metric`'s."""


def metric_data(blob: dict[str, Any]) -> list[tuple[str, list[dict[str, Any]]]]:
    """An EMF blob as PutMetricData calls: (namespace, metric data) pairs."""
    aws = blob.get("_aws") or {}
    stamp = datetime.fromtimestamp(int(aws.get("Timestamp", 0)) / 1000, UTC)
    calls = []
    for directive in aws.get("CloudWatchMetrics") or []:
        names = (directive.get("Dimensions") or [[]])[0]
        dimensions = [{"Name": n, "Value": str(blob[n])} for n in names if n in blob]
        data = []
        for metric in directive.get("Metrics") or []:
            values = blob.get(metric["Name"])
            values = values if isinstance(values, list) else [values]
            data.append(
                {
                    "MetricName": metric["Name"],
                    "Dimensions": dimensions,
                    "Value": float(sum(v for v in values if isinstance(v, int | float))),
                    "Unit": metric.get("Unit", "None"),
                    "Timestamp": stamp,
                }
            )
        calls.append((str(directive.get("Namespace")), data))
    return calls


class LocalCloudWatch:
    def __init__(self, aws_url: str, region: str) -> None:
        self._client = boto3.client(
            "cloudwatch",
            endpoint_url=aws_url,
            region_name=region,
            aws_access_key_id="local",
            aws_secret_access_key="local",  # noqa: S106 - local mode takes any key
        )
        self._blobs: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._publish, name="local-cloudwatch", daemon=True)
        self._originals = {cls: cls.__dict__["serialize_metric_set"] for cls in SERIALIZERS}

    def start(self) -> LocalCloudWatch:
        for cls, original in self._originals.items():
            cls.serialize_metric_set = self._publishing(original)  # type: ignore[attr-defined]
        self._thread.start()
        return self

    def _publishing(self, original: Any) -> Any:
        blobs = self._blobs

        def serialize_metric_set(provider: Any, *args: Any, **kwargs: Any) -> Any:
            blob = original(provider, *args, **kwargs)
            blobs.put(dict(blob))
            return blob

        return serialize_metric_set

    def stop(self) -> None:
        for cls, original in self._originals.items():
            cls.serialize_metric_set = original  # type: ignore[attr-defined]
        self._blobs.put(None)
        self._thread.join(timeout=10)

    def flush(self, timeout_s: float = 10) -> None:
        """Wait until what was emitted so far is in the local CloudWatch (tests)."""
        done = threading.Event()
        self._blobs.put({"_flush": done})
        done.wait(timeout_s)

    def _publish(self) -> None:
        while (blob := self._blobs.get()) is not None:
            if "_flush" in blob:
                blob["_flush"].set()
                continue
            for namespace, data in metric_data(blob):
                # Metrics are for watching: a failure here never touches the pipeline.
                with contextlib.suppress(Exception):
                    self._client.put_metric_data(Namespace=namespace, MetricData=data)
