"""``/initiators``: an IQN per tenant; sub-tenants see their parents' initiators."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from datera_glance.edf import versions
from datera_glance.simulator import schema
from datera_glance.simulator.listing import listing
from datera_glance.simulator.model import Initiator
from datera_glance.simulator.render import render_initiator
from datera_glance.simulator.routing import ApiError, Request, route

if TYPE_CHECKING:
    from datera_glance.simulator.cluster import Cluster


def check_initiator_paths(cluster: Cluster, req: Request, paths: list[str]) -> None:
    """404 unless every ``/initiators/<iqn>`` in ``paths`` is visible from the tenant (ACLs)."""
    for p in paths:
        m = re.fullmatch(r"/initiators/(.+)", p)
        if not m or cluster.state.visible_initiator(req.tenant, m.group(1)) is None:
            raise ApiError(404, f"Initiator {p} does not exist")


def _own(cluster: Cluster, req: Request, iqn: str) -> Initiator:
    init = cluster.state.initiators.get((req.tenant, iqn))
    if init is None:
        raise ApiError(404, f"Initiator {iqn} does not exist in tenant {req.tenant}")
    return init


@route("GET", "/initiators")
def list_initiators(cluster: Cluster, req: Request) -> Any:
    items = [
        render_initiator(i) for i in cluster.state.initiators.values() if i.tenant == req.tenant
    ]
    return listing(req, items)


@route("POST", "/initiators", schema.INITIATORS)
def create_initiator(cluster: Cluster, req: Request) -> Any:
    iqn = req.body["id"]
    if (req.tenant, iqn) in cluster.state.initiators:
        raise ApiError(409, f"Initiator {iqn} already exists in tenant {req.tenant}")
    inherited = cluster.state.visible_initiator(req.tenant, iqn)
    # Tenant-scoped initiators (v2.2, DAT-15931): the first copy of a parent tenant's
    # initiator needs force.
    scoped = versions.version(req.version).tenant_initiators
    if scoped and inherited is not None and not req.body.get("force"):
        raise ApiError(
            400,
            f"Initiator {iqn} already exists in tenant {inherited.tenant}. Creating it in "
            f"tenant {req.tenant} hides it there; set force to true to override this warning.",
        )
    init = Initiator(iqn, req.body["name"], req.tenant)
    cluster.state.initiators[(req.tenant, iqn)] = init
    cluster.save(init)
    return render_initiator(init)


@route("GET", "/initiators/*")
def get_initiator(cluster: Cluster, req: Request, iqn: str) -> Any:
    init = cluster.state.visible_initiator(req.tenant, iqn)
    if init is None:
        raise ApiError(404, f"Initiator {iqn} does not exist")
    return render_initiator(init)


@route("PUT", "/initiators/*", schema.INITIATOR_ONE)
def update_initiator(cluster: Cluster, req: Request, iqn: str) -> Any:
    init = _own(cluster, req, iqn)
    if "name" in req.body:
        init.name = req.body["name"]
        cluster.save(init)
    return render_initiator(init)


@route("DELETE", "/initiators/*", schema.INITIATOR_ONE)
def delete_initiator(cluster: Cluster, req: Request, iqn: str) -> Any:
    init = _own(cluster, req, iqn)
    path = f"/initiators/{init.id}"
    for ai in cluster.state.app_instances_of(req.tenant):
        if any(path in si.acl_initiators for si in ai.storage_instances):
            raise ApiError(409, f"Initiator {init.id} is in the ACL of {ai.name}")
    del cluster.state.initiators[(req.tenant, init.id)]
    cluster.save_removal(init)
    return render_initiator(init)
