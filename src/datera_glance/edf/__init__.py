"""The EDF REST client: ``EdfClient``, its ``ClientConfig``, error classes and typed results."""

from datera_glance.edf import errors, models
from datera_glance.edf.client import ClientConfig, EdfClient, normalize_tenant

__all__ = ["ClientConfig", "EdfClient", "errors", "models", "normalize_tenant"]
