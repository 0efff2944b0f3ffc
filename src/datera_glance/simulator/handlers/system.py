"""``GET /system`` (version, capacity) and ``GET /api`` (the schema)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from datera_glance.simulator import schema
from datera_glance.simulator.routing import Request, Response, route

if TYPE_CHECKING:
    from datera_glance.simulator.cluster import Cluster


@route("GET", "/api", auth=False)
def api(cluster: Cluster, req: Request) -> Response:
    return Response(200, schema.api_doc(req.version))


@route("GET", "/system")
def system(cluster: Cluster, req: Request) -> Any:
    used = cluster.used_bytes()
    available = max(0, cluster.capacity_bytes - used)
    return {
        "path": "/system",
        "name": "edf-simulator",
        "uuid": cluster.system_uuid,
        "sw_version": cluster.sw_version,
        "build_version": f"{cluster.sw_version}-sim",
        "op_state": "running",
        "health": "ok",
        "total_capacity": cluster.capacity_bytes,
        "available_capacity": available,
        "total_provisioned_capacity": used,
        "hybrid_total_capacity": cluster.capacity_bytes,
        "hybrid_available_capacity": available,
        "hybrid_provisioned_capacity": used,
        "all_flash_total_capacity": 0,
        "all_flash_available_capacity": 0,
        "all_flash_provisioned_capacity": 0,
        "compression_enabled": False,
        "compression_ratio": 1.0,
        "l3_enabled": False,
        "callhome_enabled": False,
        "causes": [],
    }
