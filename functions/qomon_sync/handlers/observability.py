"""Logger, Tracer and Metrics, created once and shared by every handler.

Their service name and metrics namespace come from the settings, which read
POWERTOOLS_SERVICE_NAME and POWERTOOLS_METRICS_NAMESPACE (set in template.yaml's Globals);
Powertools itself reads POWERTOOLS_LOG_LEVEL. Nothing personal is ever logged: contacts
appear as Qomon ids, e-mails as pseudonyms, changes as field paths.
"""

from __future__ import annotations

import threading
from collections import UserDict
from typing import Any, cast

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import (
    AmazonCloudWatchEMFProvider,
)

from qomon_sync.settings import get_settings


class ThreadsOwn(UserDict[str, Any]):
    """A dict whose content is the calling thread's own. In Lambda an invocation runs on
    one thread, for which this is a plain dict; where invocations share a process as
    threads (local mode), each keeps its own metrics, as each Lambda instance does."""

    def __init__(self) -> None:  # not UserDict's: `data` is per thread
        self._threads = threading.local()

    @property
    def data(self) -> dict[str, Any]:
        mine: dict[str, Any] | None = getattr(self._threads, "data", None)
        if mine is None:
            mine = self._threads.data = {}
        return mine

    @data.setter
    def data(self, value: dict[str, Any]) -> None:
        self._threads.data = value


_settings = get_settings()
logger = Logger(service=_settings.powertools_service_name)
tracer = Tracer(service=_settings.powertools_service_name)
# An explicit provider, with sets of its own: a bare Metrics() shares one class-wide set.
metrics = Metrics(
    provider=AmazonCloudWatchEMFProvider(
        namespace=_settings.powertools_metrics_namespace,
        service=_settings.powertools_service_name,
        metric_set=cast(dict[str, Any], ThreadsOwn()),
        dimension_set=cast(dict[str, Any], ThreadsOwn()),
        metadata_set=cast(dict[str, Any], ThreadsOwn()),
    )
)
