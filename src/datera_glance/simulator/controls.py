"""The simulator's own endpoints under ``/_sim/``: the HTTP face of the ``Simulator``'s Python
control API, registered in ``routing.CONTROLS``. Each needs the control token or a session
(``gateway`` checks ``Route.auth``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from datera_glance.simulator.cluster import Cluster
from datera_glance.simulator.faults import FAULT_FIELDS
from datera_glance.simulator.model import AppInstance
from datera_glance.simulator.routing import CONTROLS, Request, Response

if TYPE_CHECKING:
    from datera_glance.simulator.facade import Simulator


@CONTROLS.route("GET", "/_sim/state")
def get_state(sim: Simulator, req: Request) -> Any:
    return sim.state()


@CONTROLS.route("POST", "/_sim/faults")
def add_fault(sim: Simulator, req: Request) -> Response:
    body = req.body
    if not isinstance(body, dict):
        raise ValueError("body must be an object")
    unknown = set(body) - FAULT_FIELDS
    if unknown:
        raise ValueError(f"unknown fault fields {sorted(unknown)}")
    options = {k: v for k, v in body.items() if k not in ("method", "path")}
    sim.add_fault(body.get("method"), body["path"], **options)
    return Response(201, {"faults": sim.faults.to_json()})


@CONTROLS.route("DELETE", "/_sim/faults")
def clear_faults(sim: Simulator, req: Request) -> Any:
    sim.clear_faults()
    return {"faults": []}


@CONTROLS.route("POST", "/_sim/sessions/expire")
def expire_sessions(sim: Simulator, req: Request) -> Any:
    sim.expire_sessions()
    return {"sessions": 0}


@CONTROLS.route("PUT", "/_sim/capacity")
def set_capacity(sim: Simulator, req: Request) -> Any:
    body = req.body
    if not isinstance(body, dict) or not isinstance(body.get("bytes"), int):
        raise ValueError('body must be {"bytes": <int>}')
    sim.set_capacity(body["bytes"])
    return sim.state()["capacity"]


@CONTROLS.route("POST", "/_sim/app_instances")
def seed_app_instances(sim: Simulator, req: Request) -> Response:
    """``{"count", "tenant", "prefix", "size", "admin_state"}`` as ``Simulator``'s method."""
    body = req.body
    if not isinstance(body, dict) or not isinstance(body.get("count"), int):
        raise ValueError('body must be {"count": <int>, ...}')
    unknown = set(body) - {"count", "tenant", "prefix", "size", "admin_state"}
    if unknown:
        raise ValueError(f"unknown fields {sorted(unknown)}")
    if body["count"] < 0:
        raise ValueError("count must not be negative")
    options = {k: v for k, v in body.items() if k != "count"}
    ids = sim.seed_app_instances(body["count"], **options)
    return Response(201, {"created": len(ids), "ids": ids})


def cluster_state(cluster: Cluster) -> dict[str, Any]:
    """``GET /_sim/state`` without the faults: every object, as tests want to check it."""
    with cluster.lock:
        state = cluster.state
        used = cluster.used_bytes()
        return {
            "app_instances": [_app_instance(ai) for ai in state.app_instances.values()],
            "loop_devices": cluster.devices(),
            "initiators": [
                {"tenant": i.tenant, "id": i.id, "name": i.name} for i in state.initiators.values()
            ],
            "tenants": sorted(state.tenants),
            "capacity": {
                "total": cluster.capacity_bytes,
                "used": used,
                "available": max(0, cluster.capacity_bytes - used),
            },
            "sessions": cluster.sessions.live(),
        }


def _app_instance(ai: AppInstance) -> dict[str, Any]:
    si = ai.storage_instances[0] if ai.storage_instances else None
    vol = si.volumes[0] if si and si.volumes else None
    return {
        "tenant": ai.tenant,
        "id": ai.id,
        "name": ai.name,
        "uuid": ai.uuid,
        "descr": ai.descr,
        "admin_state": ai.admin_state,
        "size_gib": vol.size if vol else None,
        "file": vol.file if vol else None,
        "device_path": vol.device_path if vol else None,
        "acl": list(si.acl_initiators) if si else [],
        "auth_type": si.auth.get("type", "none") if si else None,
        "metadata": dict(ai.metadata),
        "storage_instances": [
            {
                "name": s.name,
                "acl": list(s.acl_initiators),
                "volumes": [
                    {
                        "name": v.name,
                        "size_gib": v.size,
                        "file": v.file,
                        "device_path": v.device_path,
                    }
                    for v in s.volumes
                ],
            }
            for s in ai.storage_instances
        ],
    }
