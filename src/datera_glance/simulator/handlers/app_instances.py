"""``/app_instances`` and what hangs below them: storage instances (ACL, CHAP auth), volumes,
metadata and ``int_ecosystem_data``."""

from __future__ import annotations

import uuid as uuidlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from oslo_utils import units

from datera_glance.edf import versions
from datera_glance.simulator import schema
from datera_glance.simulator.handlers import clones
from datera_glance.simulator.handlers.initiators import check_initiator_paths
from datera_glance.simulator.listing import listing
from datera_glance.simulator.media import (
    MediaError,
    copy_volume_file,
    create_volume_file,
    grow_volume_file,
)
from datera_glance.simulator.model import AppInstance, StorageInstance, Volume, new_iqn
from datera_glance.simulator.routing import ApiError, Request, route

if TYPE_CHECKING:
    from datera_glance.simulator.cluster import Cluster

_SCALARS = (str, int, float, bool, type(None))

# ---- app instances ---------------------------------------------------------------------


@route("GET", "/app_instances")
def list_app_instances(cluster: Cluster, req: Request) -> Any:
    return listing(
        req,
        cluster.state.app_instances_of(req.tenant),
        cluster.render.app_instance,
        fields=cluster.render.app_instance_fields,
        work=cluster.work,
    )


@route("POST", "/app_instances", schema.AI)
def create_app_instance(cluster: Cluster, req: Request) -> Any:
    return cluster.render.app_instance(create(cluster, req))


def create(cluster: Cluster, req: Request) -> AppInstance:
    """Create the app instance of a validated ``POST /app_instances`` body, online by default."""
    body = req.body
    for unsupported in ("clone_src", "app_template"):
        if unsupported in body:
            raise ApiError(400, f"{unsupported} is not supported by the EDF simulator")
    if body.get("snapshot_policies"):
        raise ApiError(400, "snapshot_policies are not supported by the EDF simulator")
    name = body["name"]
    if cluster.state.named(req.tenant, name) is not None:
        raise ApiError(409, f"App instance {name} already exists in tenant {req.tenant}")
    source = clones.clone_source(cluster, req)
    sis: list[StorageInstance] = []
    if source is not None:
        sis.append(clones.cloned_storage_instance(cluster, source))
    for s in body.get("storage_instances", []):
        sis.append(_new_storage_instance(cluster, req, s, sis))
    offline = any(s.get("admin_state") == "offline" for s in body.get("storage_instances", []))
    ai = AppInstance(
        id=str(uuidlib.uuid4()),
        name=name,
        uuid=body.get("uuid", "00000000-0000-0000-0000-000000000000"),
        tenant=req.tenant,
        descr=body.get("descr") or "",
        create_mode=body.get("create_mode", "normal"),
        admin_state="offline",
        storage_instances=sis,
    )
    _add(cluster, ai, "offline" if offline else "online", clones.copies_of(source, sis))
    return ai


def seed(
    cluster: Cluster,
    count: int,
    *,
    tenant: str = "/root",
    prefix: str = "seed-",
    size: float = 1,
    admin_state: str = "offline",
) -> list[str]:
    """Create ``count`` app instances named ``prefix0``, ``prefix1``, ... in ``tenant``, each
    exactly as ``POST /app_instances`` would (schema, capacity, volume file); return their ids.

    Offline by default, so that loop media does not attach thousands of devices. One lock
    hold and one journal line per app instance, one fdatasync at the end.
    """
    if tenant not in cluster.state.tenants:
        raise ApiError(404, f"Tenant {tenant} does not exist")
    volume = {"name": "volume-1", "size": size, "replica_count": 3, "placement_mode": "hybrid"}
    si = {"name": "storage-1", "admin_state": admin_state, "volumes": [volume]}
    ids = []
    try:
        for i in range(count):
            body = {"name": f"{prefix}{i}", "create_mode": "openstack", "storage_instances": [si]}
            req = Request("POST", versions.NAMES[-1], "/app_instances", body=body, tenant=tenant)
            cluster.validate(req, schema.AI)
            with cluster.lock:
                try:
                    ids.append(create(cluster, req).id)
                finally:
                    cluster.commit()
    finally:
        cluster.flush()  # what was made is durable before the answer, even after an error
    return ids


def _add(
    cluster: Cluster, ai: AppInstance, admin_state: str, copies: dict[str, Path] | None = None
) -> None:
    """Make the volume files and store ``ai``; on failure leave nothing behind.

    ``copies``: volume uuid -> the file whose bytes that volume starts with (a clone's).
    """
    cluster.need_capacity(sum(v.size_bytes for v in ai.volumes))
    copies = copies or {}
    created: list[Path] = []
    try:
        for vol in ai.volumes:
            if vol.uuid in copies:
                copy_volume_file(copies[vol.uuid], Path(vol.file))
            else:
                create_volume_file(Path(vol.file), vol.size_bytes)
            created.append(Path(vol.file))
        cluster.state.add_app_instance(ai)
        cluster.set_admin_state(ai, admin_state)
    except (OSError, ApiError):
        if ai.id in cluster.state.app_instances:
            cluster.state.remove_app_instance(ai)
        for f in created:
            f.unlink(missing_ok=True)
        raise
    cluster.save(ai)


def _new_storage_instance(
    cluster: Cluster, req: Request, s: dict[str, Any], before: list[StorageInstance]
) -> StorageInstance:
    if "name" not in s:
        raise ApiError(
            422,
            "Validation failed: storage_instances: name is required",
            errors=["storage_instances: 'name' is a required property"],
        )
    if any(x.name == s["name"] for x in before):
        raise ApiError(409, f"Storage instance {s['name']} given twice")
    acl = s.get("acl_policy", {})
    paths = [i["path"] for i in acl.get("initiators", [])]
    check_initiator_paths(cluster, req, paths)
    if acl.get("initiator_groups"):
        raise ApiError(404, "Initiator groups are not modelled by the EDF simulator")
    vols: list[Volume] = []
    for v in s.get("volumes", []):
        if any(x.name == v["name"] for x in vols):
            raise ApiError(409, f"Volume {v['name']} given twice")
        vol_uuid = str(uuidlib.uuid4())
        vols.append(
            Volume(
                name=v["name"],
                uuid=vol_uuid,
                size=v["size"],
                replica_count=v.get("replica_count", 3),
                placement_mode=v.get("placement_mode", "hybrid"),
                file=str(cluster.volume_file(vol_uuid)),
            )
        )
    si = StorageInstance(
        name=s["name"],
        uuid=str(uuidlib.uuid4()),
        iqn=new_iqn(),
        ips=list(cluster.portals),
        volumes=vols,
        acl_initiators=paths,
        access_control_mode=s.get("access_control_mode", "deny_all"),
        ip_pool=s.get("ip_pool", {}).get("path", "/access_network_ip_pools/default"),
    )
    if "auth" in s:
        _apply_auth(si, s["auth"])
    return si


@route("GET", "/app_instances/*")
def get_app_instance(cluster: Cluster, req: Request, ident: str) -> Any:
    return cluster.render.app_instance(cluster.app_instance(req, ident))


@route("PUT", "/app_instances/*", schema.AI_ONE)
def update_app_instance(cluster: Cluster, req: Request, ident: str) -> Any:
    ai = cluster.app_instance(req, ident)
    body = req.body
    for unsupported in ("storage_instances", "snapshot_policies", "restore_point"):
        if unsupported in body:
            raise ApiError(400, f"{unsupported} updates are not supported by the EDF simulator")
    new_name = body.get("name")
    if new_name and new_name != ai.name:
        if cluster.state.named(ai.tenant, new_name) is not None:
            raise ApiError(409, f"App instance {new_name} already exists")
        cluster.state.rename_app_instance(ai, new_name)
    if "descr" in body:
        ai.descr = body["descr"] or ""
    if "admin_state" in body:
        cluster.set_admin_state(ai, body["admin_state"])
    cluster.save(ai)
    return cluster.render.app_instance(ai)


@route("DELETE", "/app_instances/*", schema.AI_ONE)
def delete_app_instance(cluster: Cluster, req: Request, ident: str) -> Any:
    ai = cluster.app_instance(req, ident)
    if ai.admin_state == "online" and not req.body.get("force"):
        raise ApiError(
            400,
            f"App instance {ai.name} is online: set admin_state offline before deleting it, "
            "or delete with force",
        )
    rendered = cluster.render.app_instance(ai)
    try:
        cluster.detach(ai)
    except MediaError as exc:
        raise ApiError(500, f"Could not detach {ai.name}: {exc}") from exc
    # Its clones keep their own files: deleting a clone's source leaves them as they are.
    for vol in ai.volumes:
        Path(vol.file).unlink(missing_ok=True)
        for snap in vol.snapshots:
            Path(snap.file).unlink(missing_ok=True)
    cluster.state.remove_app_instance(ai)
    cluster.save_removal(ai)
    return rendered


# ---- metadata ----------------------------------------------------------------------------


def _merge_metadata(cluster: Cluster, ai: AppInstance, data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ApiError(
            422, "Validation failed: metadata must be an object", errors=["body: must be an object"]
        )
    bad = [k for k, v in data.items() if not isinstance(v, _SCALARS)]
    if bad:
        raise ApiError(
            422,
            f"Validation failed: metadata values must be scalars ({', '.join(bad)})",
            errors=[f"{k}: must be a string, number, boolean or null" for k in bad],
        )
    ai.metadata.update(data)
    cluster.save(ai)
    return dict(ai.metadata)


@route("GET", "/app_instances/*/metadata")
def get_metadata(cluster: Cluster, req: Request, ident: str) -> Any:
    return dict(cluster.app_instance(req, ident).metadata)


@route("PUT", "/app_instances/*/metadata")
def put_metadata(cluster: Cluster, req: Request, ident: str) -> Any:
    return _merge_metadata(cluster, cluster.app_instance(req, ident), req.body)


def _check_ecosystem(cluster: Cluster, req: Request) -> None:
    if not cluster.ecosystem:
        raise ApiError(404, f"No route for {req.path}", name="InvalidRouteError")


@route("GET", "/app_instances/*/int_ecosystem_data")
def get_ecosystem(cluster: Cluster, req: Request, ident: str) -> Any:
    _check_ecosystem(cluster, req)
    return dict(cluster.app_instance(req, ident).metadata)


@route("PUT", "/app_instances/*/int_ecosystem_data")
def put_ecosystem(cluster: Cluster, req: Request, ident: str) -> Any:
    _check_ecosystem(cluster, req)
    ai = cluster.app_instance(req, ident)
    body = req.body
    if not isinstance(body, dict) or set(body) != {"data"}:
        raise ApiError(
            422,
            'Validation failed: body must be {"data": {...}}',
            errors=["body: exactly one property 'data' is allowed"],
        )
    return _merge_metadata(cluster, ai, body["data"])


# ---- storage instances -------------------------------------------------------------------


@route("GET", "/app_instances/*/storage_instances")
def list_storage_instances(cluster: Cluster, req: Request, ident: str) -> Any:
    ai = cluster.app_instance(req, ident)
    return listing(req, [cluster.render.storage_instance(ai, si) for si in ai.storage_instances])


@route("GET", "/app_instances/*/storage_instances/*")
def get_storage_instance(cluster: Cluster, req: Request, ident: str, si_name: str) -> Any:
    return cluster.render.storage_instance(*cluster.storage_instance(req, ident, si_name))


@route("PUT", "/app_instances/*/storage_instances/*", schema.SI)
def update_storage_instance(cluster: Cluster, req: Request, ident: str, si_name: str) -> Any:
    ai, si = cluster.storage_instance(req, ident, si_name)
    body = req.body
    if "volumes" in body:
        raise ApiError(400, "volumes updates are not supported by the EDF simulator")
    if "admin_state" in body and body["admin_state"] != ai.admin_state:
        raise ApiError(400, "The EDF simulator models admin_state per app instance: set it there")
    if "acl_policy" in body:
        _apply_acl(cluster, req, si, body["acl_policy"])
    if "auth" in body:
        _apply_auth(si, body["auth"])
    if "access_control_mode" in body:
        si.access_control_mode = body["access_control_mode"]
    if "ip_pool" in body:
        si.ip_pool = body["ip_pool"]["path"]
    cluster.save(ai)
    return cluster.render.storage_instance(ai, si)


def _apply_acl(cluster: Cluster, req: Request, si: StorageInstance, acl: dict[str, Any]) -> None:
    if acl.get("initiator_groups"):
        raise ApiError(404, "Initiator groups are not modelled by the EDF simulator")
    if "initiators" in acl:
        paths = [i["path"] for i in acl["initiators"]]
        check_initiator_paths(cluster, req, paths)
        si.acl_initiators = list(dict.fromkeys(paths))
    if "initiator_groups" in acl:
        si.acl_initiator_groups = []


def _apply_auth(si: StorageInstance, auth: dict[str, Any]) -> None:
    new = {**si.auth, **auth}
    kind = new.get("type", "none")
    needed = {
        "none": [],
        "chap": ["target_user_name", "target_pswd"],
        "mchap": ["target_user_name", "target_pswd", "initiator_user_name", "initiator_pswd"],
    }[kind]
    missing = [k for k in needed if not new.get(k)]
    if missing:
        raise ApiError(400, f"auth type {kind} needs {', '.join(missing)}")
    si.auth = {k: str(v) for k, v in new.items()}


@route("GET", "/app_instances/*/storage_instances/*/acl_policy")
def get_acl(cluster: Cluster, req: Request, ident: str, si_name: str) -> Any:
    return cluster.render.acl(*cluster.storage_instance(req, ident, si_name))


@route("PUT", "/app_instances/*/storage_instances/*/acl_policy", schema.ACL)
def put_acl(cluster: Cluster, req: Request, ident: str, si_name: str) -> Any:
    ai, si = cluster.storage_instance(req, ident, si_name)
    _apply_acl(cluster, req, si, req.body)
    cluster.save(ai)
    return cluster.render.acl(ai, si)


@route("PUT", "/app_instances/*/storage_instances/*/acl_policy/initiators", schema.ACL_INITIATORS)
def put_acl_member(cluster: Cluster, req: Request, ident: str, si_name: str) -> Any:
    ai, si = cluster.storage_instance(req, ident, si_name)
    path = req.body["path"]
    if req.body["op"] == "add":
        check_initiator_paths(cluster, req, [path])
        if path in si.acl_initiators:
            raise ApiError(409, f"{path} is already in the ACL")
        si.acl_initiators.append(path)
    else:
        if path not in si.acl_initiators:
            raise ApiError(404, f"{path} is not in the ACL")
        si.acl_initiators.remove(path)
    cluster.save(ai)
    return cluster.render.acl(ai, si)


@route("GET", "/app_instances/*/storage_instances/*/auth")
def get_auth(cluster: Cluster, req: Request, ident: str, si_name: str) -> Any:
    return cluster.render.auth(*cluster.storage_instance(req, ident, si_name))


@route("PUT", "/app_instances/*/storage_instances/*/auth", schema.AUTH)
def put_auth(cluster: Cluster, req: Request, ident: str, si_name: str) -> Any:
    ai, si = cluster.storage_instance(req, ident, si_name)
    _apply_auth(si, req.body)
    cluster.save(ai)
    return cluster.render.auth(ai, si)


# ---- volumes -----------------------------------------------------------------------------


@route("GET", "/app_instances/*/storage_instances/*/volumes")
def list_volumes(cluster: Cluster, req: Request, ident: str, si_name: str) -> Any:
    ai, si = cluster.storage_instance(req, ident, si_name)
    return listing(req, [cluster.render.volume(ai, si, v) for v in si.volumes])


@route("GET", "/app_instances/*/storage_instances/*/volumes/*")
def get_volume(cluster: Cluster, req: Request, ident: str, si_name: str, vol_name: str) -> Any:
    return cluster.render.volume(*cluster.volume(req, ident, si_name, vol_name))


@route("PUT", "/app_instances/*/storage_instances/*/volumes/*", schema.VOLUME)
def update_volume(cluster: Cluster, req: Request, ident: str, si_name: str, vol_name: str) -> Any:
    ai, si, vol = cluster.volume(req, ident, si_name, vol_name)
    body = req.body
    if "restore_point" in body:
        raise ApiError(400, "restore_point is not supported by the EDF simulator")
    if "size" in body and body["size"] != vol.size:
        _resize(cluster, ai, vol, body["size"])
    if "replica_count" in body:
        vol.replica_count = body["replica_count"]
    if "placement_mode" in body:
        vol.placement_mode = body["placement_mode"]
    cluster.save(ai)
    return cluster.render.volume(ai, si, vol)


def _resize(cluster: Cluster, ai: AppInstance, vol: Volume, new_size: float) -> None:
    if ai.admin_state == "online":
        # Like the upstream drivers (DAT-20105): resize only while offline.
        raise ApiError(
            400,
            f"Volume {vol.name} of {ai.name} cannot be resized while the app instance "
            "is online: set admin_state offline first",
        )
    if new_size < vol.size:
        raise ApiError(400, f"Volume {vol.name} cannot shrink ({vol.size} -> {new_size})")
    new_bytes = int(new_size * units.Gi)
    cluster.need_capacity(new_bytes - vol.size_bytes)
    try:
        grow_volume_file(Path(vol.file), new_bytes)
    except OSError as exc:
        raise ApiError(500, f"Could not grow {vol.name}: {exc}") from exc
    cluster.state.resize_volume(vol, new_size)
