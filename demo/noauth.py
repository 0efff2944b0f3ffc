"""A paste filter for glance-api without Keystone: every request is one admin of one project.

glance's own ``unauthenticated-context`` leaves the project empty, and glance then cannot create
the task behind an interoperable import (``tasks.owner`` is NOT NULL), so the harness puts this
filter in its place. Like glance's keystone context, it takes the ``X-Auth-Token``,
``X-Roles`` (added to admin, member and reader: ``service`` for the new locations API) and
``X-Service-Catalog`` (JSON) headers: glance-download finds the other region's glance in the
catalog and sends it the token. Loaded by glance-api only; glance is imported when the filter is
built.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any


def filter_factory(global_conf: dict[str, str], **local_conf: str) -> Callable[[Any], Any]:
    """paste.deploy entry: ``paste.filter_factory = demo.noauth:filter_factory``."""
    import glance.context
    from glance.api.middleware.context import UnauthenticatedContextMiddleware

    project_id = local_conf.get("project_id", "datera-glance")
    user_id = local_conf.get("user_id", "datera-glance")

    class FixedIdentityContextMiddleware(UnauthenticatedContextMiddleware):
        def process_request(self, req: Any) -> None:
            catalog = req.headers.get("X-Service-Catalog")
            extra_roles = [r.strip() for r in req.headers.get("X-Roles", "").split(",")]
            req.context = glance.context.RequestContext(
                user_id=user_id,
                project_id=project_id,
                roles=["admin", "member", "reader", *filter(None, extra_roles)],
                is_admin=True,
                auth_token=req.headers.get("X-Auth-Token"),
                service_catalog=json.loads(catalog) if catalog else None,
            )

    factory: Callable[[Any], Any] = FixedIdentityContextMiddleware.factory(global_conf)
    return factory
