"""Qomon adapter: the HTTP client, its pacing and its typed errors."""

from qomon_sync.adapters.qomon.client import CallStats, QomonClient, RetryPolicy, normalise_email
from qomon_sync.adapters.qomon.errors import (
    ProblemItem,
    QomonAuthError,
    QomonBudgetExhausted,
    QomonError,
    QomonMalformedResponse,
    QomonNotFound,
    QomonRateLimited,
    QomonRequestError,
    QomonServerError,
    QomonTransportError,
    QomonValidationError,
)
from qomon_sync.adapters.qomon.pacing import BucketWaitTooLong, Deadline, Pacer, TokenBucket

__all__ = [
    "BucketWaitTooLong",
    "CallStats",
    "Deadline",
    "Pacer",
    "ProblemItem",
    "QomonAuthError",
    "QomonBudgetExhausted",
    "QomonClient",
    "QomonError",
    "QomonMalformedResponse",
    "QomonNotFound",
    "QomonRateLimited",
    "QomonRequestError",
    "QomonServerError",
    "QomonTransportError",
    "QomonValidationError",
    "RetryPolicy",
    "TokenBucket",
    "normalise_email",
]
