"""``PUT /login`` and ``PUT /logout``."""

from __future__ import annotations

import secrets
import time
from typing import TYPE_CHECKING, Any

from datera_glance.simulator import schema
from datera_glance.simulator.routing import ApiError, Request, Response, route

if TYPE_CHECKING:
    from datera_glance.simulator.cluster import Cluster


@route("PUT", "/login", schema.LOGIN, auth=False)
def login(cluster: Cluster, req: Request) -> Response:
    """The bare ``{key, version}`` body, not an envelope (like EDF)."""
    body = req.body
    ok_name = secrets.compare_digest(str(body["name"]), cluster.username)
    ok_pw = secrets.compare_digest(str(body["password"]), cluster.password)
    if not (ok_name and ok_pw):
        raise ApiError(401, "Invalid credentials", name="AuthFailedError")
    key = cluster.sessions.create()
    return Response(
        200, {"key": key, "version": f"v{req.version}", "request_time": int(time.time())}
    )


@route("PUT", "/logout")
def logout(cluster: Cluster, req: Request) -> Any:
    cluster.sessions.end(req.headers.get("Auth-Token") or "")
    return {}
