"""A paste filter for glance-api without Keystone: every request is one admin of one project.

glance's own ``unauthenticated-context`` leaves the project empty, and glance then cannot create
the task behind an interoperable import (``tasks.owner`` is NOT NULL), so the harness puts this
filter in its place. Loaded by glance-api only; glance is imported when the filter is built.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def filter_factory(global_conf: dict[str, str], **local_conf: str) -> Callable[[Any], Any]:
    """paste.deploy entry: ``paste.filter_factory = datera_glance.demo.noauth:filter_factory``."""
    import glance.context
    from glance.api.middleware.context import UnauthenticatedContextMiddleware

    project_id = local_conf.get("project_id", "datera-glance")
    user_id = local_conf.get("user_id", "datera-glance")

    class FixedIdentityContextMiddleware(UnauthenticatedContextMiddleware):
        def process_request(self, req: Any) -> None:
            req.context = glance.context.RequestContext(
                user_id=user_id,
                project_id=project_id,
                roles=["admin", "member", "reader"],
                is_admin=True,
            )

    factory: Callable[[Any], Any] = FixedIdentityContextMiddleware.factory(global_conf)
    return factory
