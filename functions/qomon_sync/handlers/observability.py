"""Logger, Tracer and Metrics, created once and shared by every handler.

Their service name and metrics namespace come from the settings, which read
POWERTOOLS_SERVICE_NAME and POWERTOOLS_METRICS_NAMESPACE (set in template.yaml's Globals);
Powertools itself reads POWERTOOLS_LOG_LEVEL. Nothing personal is ever logged: contacts
appear as Qomon ids, e-mails as pseudonyms, changes as field paths.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer

from qomon_sync.settings import get_settings

_settings = get_settings()
logger = Logger(service=_settings.powertools_service_name)
tracer = Tracer(service=_settings.powertools_service_name)
metrics = Metrics(
    namespace=_settings.powertools_metrics_namespace, service=_settings.powertools_service_name
)
