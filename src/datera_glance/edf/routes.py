"""EDF's resource paths as ``Route``s (path + template) for the client's calls.

Only URL shapes and their quoting live here; what the calls mean is the client's.
"""

from __future__ import annotations

from urllib.parse import quote

from datera_glance.edf import models
from datera_glance.edf.transport import Route

__all__ = [
    "APP_INSTANCES",
    "INITIATORS",
    "SYSTEM",
    "TENANTS",
    "AiRef",
    "acl_route",
    "ai_route",
    "initiator_route",
    "si_route",
    "tenant_route",
]

SYSTEM = Route.to("system")
TENANTS = Route.to("tenants")
APP_INSTANCES = Route.to("app_instances")
INITIATORS = Route.to("initiators")

AiRef = str | models.AppInstance  # an app instance's id or name, or the model


def _ai_id(ai: AiRef) -> str:
    if isinstance(ai, models.AppInstance):
        return quote(ai.id or ai.name, safe="")
    return quote(ai, safe="")


def ai_route(ai: AiRef, tail: str = "", **names: str) -> Route:
    """``app_instances/:ai`` + ``tail``, its other placeholders filled from ``names``."""
    quoted = {key: quote(value) for key, value in names.items()}
    return Route.to("app_instances/:ai" + tail, ai=_ai_id(ai), **quoted)


def si_route(ai: AiRef, si: str, tail: str = "") -> Route:
    """``app_instances/:ai/storage_instances/:si`` + ``tail``."""
    return ai_route(ai, "/storage_instances/:si" + tail, si=si)


def acl_route(ai: AiRef, si: str, tail: str = "") -> Route:
    """The storage instance's ``acl_policy`` + ``tail``."""
    return si_route(ai, si, "/acl_policy" + tail)


def initiator_route(iqn: str) -> Route:
    return Route.to("initiators/:iqn", iqn=quote(iqn, safe=":"))  # EDF takes the colons raw


def tenant_route(tenant: str) -> Route:
    """``tenants/root/a/b`` for tenant ``/root/a/b``."""
    path = "/".join(quote(level) for level in tenant.strip("/").split("/"))
    return Route.to("tenants/:tenant", tenant=path)
