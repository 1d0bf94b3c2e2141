"""Logger, Tracer and Metrics, created once and shared by every handler.

Settings come from the environment (POWERTOOLS_SERVICE_NAME, POWERTOOLS_METRICS_NAMESPACE,
POWERTOOLS_LOG_LEVEL, set in template.yaml's Globals). Nothing personal is ever logged:
contacts appear as Qomon ids, e-mails as pseudonyms, changes as field paths.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer

logger = Logger(service="qomon-sync")
tracer = Tracer(service="qomon-sync")
metrics = Metrics(namespace="QomonSync", service="qomon-sync")
