"""The EDF REST client: ``EdfClient``, its ``ClientConfig``, the tenant normaliser, the retry
policy, a request counter for tests, error classes and typed results."""

from datera_glance.edf import errors, models
from datera_glance.edf.client import EdfClient
from datera_glance.edf.config import ClientConfig, normalize_tenant
from datera_glance.edf.retry import RetryPolicy
from datera_glance.edf.transport import RequestCounter, RequestRecord

__all__ = [
    "ClientConfig",
    "EdfClient",
    "RequestCounter",
    "RequestRecord",
    "RetryPolicy",
    "errors",
    "models",
    "normalize_tenant",
]
