"""What the API shows of the stored objects: the JSON shapes of the v2.1 captures."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from oslo_utils import units

from datera_glance.simulator.listing import Listing
from datera_glance.simulator.model import (
    AppInstance,
    Initiator,
    Snapshot,
    StorageInstance,
    Tenant,
    Volume,
)
from datera_glance.simulator.routing import Request
from datera_glance.simulator.work import Work

HIDDEN = "(hidden)"
STORAGE_NODE = "/storage_nodes/5b2a6a9e-0d3c-4c1e-9a57-5e1a2b3c4d5e"


def envelope(req: Request, data: Any) -> dict[str, Any]:
    """The body of every successful answer but login's and ``/api``'s."""
    metadata: dict[str, Any] = {}
    if isinstance(data, Listing):
        data, metadata = data.items, data.metadata
    return {
        "tenant": req.tenant,
        "path": req.path,
        "version": f"v{req.version}",
        "data": data,
        "metadata": metadata,
        "request_time": int(time.time() * 1000),
    }


class Renderer:
    """App instances and their parts, as the cluster's configuration shows them.

    :param placement_policy: volumes show ``placement_policy`` (product version 3.3 and up)
    :param available_delay: seconds a storage instance stays unavailable after online
    """

    def __init__(
        self,
        *,
        placement_policy: bool,
        available_delay: float,
        clock: Callable[[], float],
        work: Work,
    ) -> None:
        self.placement_policy = placement_policy
        self.available_delay = available_delay
        self.clock = clock
        self.work = work

    def app_instance(self, ai: AppInstance) -> dict[str, Any]:
        self.work.rendered += 1
        out = self.app_instance_fields(ai)
        out["storage_instances"] = [self.storage_instance(ai, si) for si in ai.storage_instances]
        return out

    def app_instance_fields(self, ai: AppInstance) -> dict[str, Any]:
        """The top level without ``storage_instances``: cheap, what filters and sorts read."""
        return {
            "tenant": ai.tenant,
            "path": f"/app_instances/{ai.id}",
            "name": ai.name,
            "id": ai.id,
            "uuid": ai.uuid,
            "health": "ok",
            "app_template": {"path": "", "resolved_path": "", "resolved_tenant": ""},
            "descr": ai.descr,
            "admin_state": ai.admin_state,
            "create_mode": ai.create_mode,
            "snapshots": [],
            "snapshot_policies": [],
            "deployment_state": "deployed",
        }

    def storage_instance(self, ai: AppInstance, si: StorageInstance) -> dict[str, Any]:
        path = f"/app_instances/{ai.id}/storage_instances/{si.name}"
        online = ai.admin_state == "online"
        ready = online and self.clock() >= ai.online_since + self.available_delay
        access: dict[str, Any] = {"path": path + "/access", "ips": list(si.ips), "iqn": si.iqn}
        if online and si.volumes and si.volumes[0].device_path is not None:
            access["device_path"] = si.volumes[0].device_path
        return {
            "health": "ok",
            "path": path,
            "name": si.name,
            "uuid": si.uuid,
            "admin_state": ai.admin_state,
            "op_state": "available" if ready else "unavailable",
            "deployment_state": "deployed",
            "volumes": [self.volume(ai, si, v) for v in si.volumes],
            "access_control_mode": si.access_control_mode,
            "acl_policy": self.acl(ai, si),
            "ip_pool": {
                "path": si.ip_pool,
                "resolved_path": si.ip_pool,
                "resolved_tenant": "/root",
            },
            "access": access,
            "auth": self.auth(ai, si),
            "active_initiators": [],
            "active_storage_nodes": [{"path": STORAGE_NODE}],
        }

    def volume(self, ai: AppInstance, si: StorageInstance, vol: Volume) -> dict[str, Any]:
        path = f"/app_instances/{ai.id}/storage_instances/{si.name}/volumes/{vol.name}"
        try:
            in_use = Path(vol.file).stat().st_blocks * 512 / units.Gi
        except OSError:
            in_use = 0.0
        out: dict[str, Any] = {
            "path": path,
            "name": vol.name,
            "uuid": vol.uuid,
            "size": vol.size,
            "replica_count": vol.replica_count,
            "placement_mode": vol.placement_mode,
            "capacity_in_use": round(in_use, 3),
            "snapshot_policies": [],
            "snapshots": [self.snapshot(ai, si, vol, snap) for snap in vol.snapshots],
            "op_state": "available",
            "active_storage_nodes": [{"path": STORAGE_NODE}],
            "health": "ok",
            "deployment_state": "deployed",
        }
        if self.placement_policy:
            out["placement_policy"] = {"path": f"/placement_policies/{vol.placement_mode}"}
        if vol.device_path is not None:
            out["device_path"] = vol.device_path
        return out

    def snapshot(
        self, ai: AppInstance, si: StorageInstance, vol: Volume, snap: Snapshot
    ) -> dict[str, Any]:
        path = (
            f"/app_instances/{ai.id}/storage_instances/{si.name}/volumes/{vol.name}"
            f"/snapshots/{snap.utc_ts}"
        )
        seconds = float(snap.utc_ts)
        return {
            "path": path,
            "uuid": snap.uuid,
            "utc_ts": snap.utc_ts,
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(seconds)),
            "op_state": "available",
        }

    def acl(self, ai: AppInstance, si: StorageInstance) -> dict[str, Any]:
        return {
            "path": f"/app_instances/{ai.id}/storage_instances/{si.name}/acl_policy",
            "initiators": [{"path": p} for p in si.acl_initiators],
            "initiator_groups": [{"path": p} for p in si.acl_initiator_groups],
        }

    def auth(self, ai: AppInstance, si: StorageInstance) -> dict[str, Any]:
        return {
            "path": f"/app_instances/{ai.id}/storage_instances/{si.name}/auth",
            "type": si.auth.get("type", "none"),
            "initiator_user_name": si.auth.get("initiator_user_name", ""),
            "initiator_pswd": HIDDEN,
            "target_user_name": si.auth.get("target_user_name", ""),
            "target_pswd": HIDDEN,
        }


def render_initiator(init: Initiator) -> dict[str, Any]:
    return {
        "path": f"/initiators/{init.id}",
        "id": init.id,
        "name": init.name,
        "tenant": init.tenant,
    }


def render_tenant(t: Tenant, all_paths: Iterable[str]) -> dict[str, Any]:
    """``all_paths``: every tenant's path, for the ``subtenants`` list."""
    parent = t.path.rsplit("/", 1)[0]
    return {
        "path": "/tenants" + t.path,
        "name": t.path.rsplit("/", 1)[1],
        "descr": t.descr,
        "parent_path": parent,
        "subtenants": [
            "/tenants" + p
            for p in sorted(all_paths)
            if p.rsplit("/", 1)[0] == t.path and p != t.path
        ],
    }
