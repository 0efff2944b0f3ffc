"""``/tenants``: create, list, get and delete (empty only) tenants below the request's."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from datera_glance.simulator import schema
from datera_glance.simulator.listing import listing
from datera_glance.simulator.model import Tenant
from datera_glance.simulator.render import render_tenant
from datera_glance.simulator.routing import ApiError, Request, route

if TYPE_CHECKING:
    from datera_glance.simulator.cluster import Cluster


def _visible(cluster: Cluster, req: Request) -> list[Tenant]:
    """The request's tenant and everything below it."""
    return [
        t
        for p, t in sorted(cluster.state.tenants.items())
        if p == req.tenant or p.startswith(req.tenant + "/")
    ]


def _tenant(cluster: Cluster, req: Request, rest: str) -> Tenant:
    path = "/" + rest.strip("/")
    t = cluster.state.tenants.get(path)
    if t is None or t not in _visible(cluster, req):
        raise ApiError(404, f"Tenant {path} does not exist")
    return t


@route("GET", "/tenants")
def list_tenants(cluster: Cluster, req: Request) -> Any:
    paths = list(cluster.state.tenants)
    return listing(req, [render_tenant(t, paths) for t in _visible(cluster, req)])


@route("POST", "/tenants", schema.TENANTS)
def create_tenant(cluster: Cluster, req: Request) -> Any:
    tenants = cluster.state.tenants
    parent = "/" + req.body.get("parent_path", "/root").strip("/")
    if parent not in tenants:
        raise ApiError(404, f"Parent tenant {parent} does not exist")
    path = f"{parent}/{req.body['name']}"
    if path in tenants:
        raise ApiError(409, f"Tenant {path} already exists")
    tenant = Tenant(path, req.body.get("descr") or "")
    tenants[path] = tenant
    cluster.save(tenant)
    return render_tenant(tenant, tenants)


@route("GET", "/tenants/**")
def get_tenant(cluster: Cluster, req: Request, path: str) -> Any:
    return render_tenant(_tenant(cluster, req, path), cluster.state.tenants)


@route("DELETE", "/tenants/**")
def delete_tenant(cluster: Cluster, req: Request, path: str) -> Any:
    t = _tenant(cluster, req, path)
    state = cluster.state
    if t.path == "/root":
        raise ApiError(400, "The root tenant cannot be deleted")
    used = (
        any(p.startswith(t.path + "/") for p in state.tenants)
        or state.app_instances_of(t.path)
        or any(i.tenant == t.path for i in state.initiators.values())
    )
    if used:
        raise ApiError(409, f"Tenant {t.path} is not empty")
    del state.tenants[t.path]
    cluster.save_removal(t)
    return render_tenant(t, state.tenants)
