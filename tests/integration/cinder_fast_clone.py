"""Datera's Cinder driver's fast image clone, replayed with Datera's own SDK (``dfs-sdk``).

Run as a program in a network namespace of its own (``test_cinder_fast_clone.py`` does it):
dfs-sdk 1.2.27 always connects to port 7717 (``dfs_sdk.constants.REST_PORT``), so the
simulator listens on 127.0.0.1:7717 there, where no other test or program can hold the port.

The program stores an image with our ``Store.add`` and then makes the calls that
Datera/cinder-driver ``src/cinder/volume/drivers/datera/datera_api22.py`` (and
``datera_api21.py``) makes for a volume created from that image with
``datera_enable_image_cache`` on, in their order and with their arguments:

1. ``_clone_image_2_2`` -> ``_vol_exists_2_2`` -> ``datera_common.cvol_to_ai`` without a
   tenant: ``tenants.get``, then ``app_instances.list(filter='match(name,.*<id>.*)')``;
2. the cached branch: ``cvol_to_ai``, ``ai.metadata.get`` (``type: image`` is trusted),
   ``_get_vol_timestamp_2_2`` (``cvol_to_dvol``: SI list, volume list; ``snapshots.list``);
3. ``_create_cloned_volume_2_2``: ``cvol_to_dvol`` of the image, ``app_instances.create``
   with ``clone_volume_src``, then ``_add_vol_meta_2_2``;
4. "Force volume resize": ``_extend_volume_2_2`` from size 0, in ``_offline_flip_2_2``
   (offline, ``dvol.set(size=...)``, online again);
5. attach, as Cinder's volume manager does it: ``create_export`` (``_create_export_2_2``:
   offline/online flip, initiator lookup or create, ACL read-modify-write, SI poll, metadata)
   and ``initialize_connection`` (``_initialize_connection_2_2``: online, SI list, access);
6. the host side: os-brick's LOCAL connector on the simulator's ``device_path``; the bytes
   are read back and compared with the image.

The Cinder-only parts (volume types, glance visibility, the image-cache volume of the cache
miss branch, CHAP, retype) are not EDF calls and are left out. The tenant comes from
``datera_common.get_tenant`` for the driver's ``datera_tenant_id``.
"""

from __future__ import annotations

import collections
import collections.abc
import contextlib
import hashlib
import io
import json
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from os_brick.initiator.connectors.local import LocalConnector
from oslo_utils import units

from datera_glance.simulator import Simulator
from datera_glance.store import Store
from tests.plugins.store import make_conf

# dfs-sdk 1.2.27 (the last release, 2021) subclasses collections.Mapping, an alias Python
# 3.10 removed; Cinder's Datera driver ran it on older Pythons. Restore the alias, nothing else.
if not hasattr(collections, "Mapping"):
    collections.Mapping = collections.abc.Mapping  # type: ignore[attr-defined]

import dfs_sdk
from dfs_sdk import exceptions as dexceptions

SDK_PORT = 7717  # dfs_sdk.constants.REST_PORT: the SDK cannot be told another
INITIATOR = "iqn.1993-08.org.debian:01:cinder-host"
OS_PREFIX = "OS"  # datera_common.OS_PREFIX


def format_tenant(tenant: str | None) -> str | None:
    """``datera_common._format_tenant``: any name containing "root" is ``/root`` itself."""
    if tenant == "all" or (tenant and "root" in tenant):
        return "/root"
    if tenant:
        return "/" + "/".join(("root", tenant)).strip("/")
    return tenant


def cinder_tenant(tenant_id: str | None, project_id: str) -> str:
    """``datera_common.get_tenant``: the tenant Cinder's driver uses for a project.

    ``tenant_id`` is the driver's ``datera_tenant_id`` after ``DateraDriver.__init__`` (unset
    becomes ``""``; the string ``"None"`` becomes ``None``, on which ``get_tenant`` fails).
    """
    if tenant_id is None:
        raise AttributeError("'NoneType' object has no attribute 'lower'")
    if tenant_id.lower() == "map":
        tenant = format_tenant(f"{OS_PREFIX}-{project_id}")
    elif not tenant_id:
        tenant = format_tenant("root")
    else:
        tenant = format_tenant(tenant_id)
    assert tenant is not None
    return tenant


class CinderDriverCalls:
    """The EDF calls of Datera's Cinder driver for one image clone, on dfs-sdk."""

    def __init__(
        self, api: Any, apiv: str, tenant_id: str, *, sleep: Callable[[float], None]
    ) -> None:
        self.api = api
        self.apiv = apiv
        self.tenant_id = tenant_id
        self.sleep = sleep

    # -- datera_common ----------------------------------------------------------------------

    def get_tenant(self, project_id: str) -> str:
        return cinder_tenant(self.tenant_id, project_id)

    def create_tenant(self, project_id: str) -> str:
        if self.tenant_id.lower() == "map":
            name = f"{OS_PREFIX}-{project_id}"
        elif self.tenant_id:
            name = self.tenant_id.replace("root", "").strip("/")
        else:
            name = "root"
        if name:
            with contextlib.suppress(dexceptions.ApiConflictError):
                self.api.tenants.create(name=name)
        tenant = format_tenant(name)
        assert tenant is not None
        return tenant

    def cvol_to_ai(self, resource: dict[str, Any], tenant: str | None = None) -> Any:
        if not tenant:
            tenant = self.get_tenant(resource["project_id"])
            try:
                self.api.tenants.get(tenant.strip("/"))
            except dexceptions.ApiNotFoundError:
                self.create_tenant(resource["project_id"])
        ais = self.api.app_instances.list(filter=f"match(name,.*{resource['id']}.*)", tenant=tenant)
        if not ais:
            raise LookupError(f"volume {resource['id']} not found in {tenant}")
        return ais[0]

    def cvol_to_dvol(self, resource: dict[str, Any], tenant: str) -> Any:
        ai = self.cvol_to_ai(resource, tenant=tenant)
        si = ai.storage_instances.list(tenant=tenant)[0]
        return si.volumes.list(tenant=tenant)[0]

    # -- datera_api22 / datera_api21 ------------------------------------------------------------

    def clone_image(self, volume: dict[str, Any], image_id: str, updated_at: float) -> None:
        """``_clone_image_2_x`` for a raw image that is already on the cluster."""
        src_vol = {"id": image_id, "size": volume["size"], "project_id": volume["project_id"]}
        self.cvol_to_ai(src_vol)  # _vol_exists: raises if it is not there
        tenant = self.get_tenant(src_vol["project_id"])
        ai = self.cvol_to_ai(src_vol, tenant=tenant)
        metadata = ai.metadata.get(tenant=tenant)
        ts = self.vol_timestamp(src_vol)
        if metadata.get("type") != "image":
            # The driver would treat it as its own cache (and re-cache it if older than
            # updated_at): no test here stores such a volume.
            raise AssertionError(f"not a Glance image volume (snapshot ts {ts}): {metadata}")
        self.create_cloned_volume(volume, src_vol)
        size = volume["size"]
        volume["size"] = 0
        self.extend_volume(volume, size)
        volume["size"] = size

    def vol_timestamp(self, volume: dict[str, Any]) -> float:
        tenant = self.get_tenant(volume["project_id"])
        snapshots = self.cvol_to_dvol(volume, tenant).snapshots.list(tenant=tenant)
        return float(snapshots[0].utc_ts) if len(snapshots) == 1 else 0

    def create_cloned_volume(self, volume: dict[str, Any], src_vref: dict[str, Any]) -> None:
        tenant = self.get_tenant(volume["project_id"])
        src = self.cvol_to_dvol(src_vref, tenant).path
        data = {
            "create_mode": "openstack",
            "name": f"{OS_PREFIX}-{volume['id']}",
            "uuid": str(volume["id"]),
            "clone_volume_src": {"path": src},
        }
        self.api.app_instances.create(tenant=self.get_tenant(volume["project_id"]), **data)
        if volume["size"] > src_vref["size"]:
            self.extend_volume(volume, volume["size"])
        self.add_vol_meta(volume)

    def extend_volume(self, volume: dict[str, Any], new_size: int) -> None:
        if volume["size"] >= new_size:
            return
        tenant = self.get_tenant(volume["project_id"])
        ai = self.cvol_to_ai(volume, tenant=tenant)  # _offline_flip
        reonline = ai.admin_state == "online"
        ai.set(tenant=tenant, admin_state="offline")
        self.cvol_to_dvol(volume, tenant).set(tenant=tenant, size=new_size)
        if reonline:
            ai.set(tenant=tenant, admin_state="online")

    def add_vol_meta(self, volume: dict[str, Any], connector: dict[str, Any] | None = None) -> None:
        metadata = {
            "host": volume.get("host", ""),
            "display_name": volume.get("display_name", ""),
            "bootable": str(volume.get("bootable", False)),
            "availability_zone": volume.get("availability_zone", ""),
            **(connector or {}),
        }
        tenant = self.get_tenant(volume["project_id"])
        self.cvol_to_ai(volume, tenant=tenant).metadata.set(tenant=tenant, **metadata)

    def create_export(self, volume: dict[str, Any], connector: dict[str, Any]) -> None:
        tenant = self.get_tenant(volume["project_id"])
        ai = self.cvol_to_ai(volume, tenant=tenant)
        ai.set(tenant=tenant, admin_state="offline", force=True)
        ai.storage_instances.list(tenant=tenant)
        ai.set(tenant=tenant, admin_state="online")
        storage_instances = ai.storage_instances.list(tenant=tenant)
        initiator = connector["initiator"]
        name = f"OpenStack-{str(uuid.uuid4())[:8]}"
        dinit: Any = None
        if self.apiv == "2.1":
            with contextlib.suppress(dexceptions.ApiConflictError):
                dinit = self.api.initiators.create(tenant=tenant, id=initiator, name=name)
        else:
            try:
                dinit = self.api.initiators.get(initiator, tenant=tenant)
                if dinit.tenant != tenant:
                    raise dexceptions.ApiNotFoundError("initiator of another tenant")
            except dexceptions.ApiNotFoundError:
                with contextlib.suppress(dexceptions.ApiConflictError):
                    dinit = self.api.initiators.create(
                        tenant=tenant, id=initiator, name=name, force=True
                    )
        for si in storage_instances:
            existing = si.acl_policy.get(tenant=tenant)
            si.acl_policy.set(
                tenant=tenant,
                initiators=[{"path": i["path"]} for i in existing["initiators"]]
                + [{"path": dinit["path"]}],
                initiator_groups=[{"path": g["path"]} for g in existing["initiator_groups"]],
            )
        self.si_poll(storage_instances[-1], tenant)
        self.add_vol_meta(volume, connector)

    def si_poll(self, si: Any, tenant: str) -> None:
        for _ in range(10):
            si = si.reload(tenant=tenant)
            if si.op_state == "available":
                return
            self.sleep(1)
        raise TimeoutError("Resource not ready.")

    def initialize_connection(self, volume: dict[str, Any]) -> dict[str, Any]:
        tenant = self.get_tenant(volume["project_id"])
        ai = self.cvol_to_ai(volume, tenant=tenant)
        ai.set(tenant=tenant, admin_state="online")
        si = ai.storage_instances.list(tenant=tenant)[0]
        return {
            "target_iqn": si.access["iqn"],
            "target_portal": si.access["ips"][0] + ":3260",
            "device_path": si.access["device_path"],  # the simulator's stand-in for iSCSI
        }


# -- the program --------------------------------------------------------------------------------


def image_chunks(size: int, chunk: int = 4 * units.Mi) -> Iterator[bytes]:
    """A reproducible image of ``size`` bytes: data at both ends and every 256 MiB, zeros
    elsewhere (so that a few GiB cost little with ``skip_zero_blocks``)."""
    pos = 0
    while pos < size:
        n = min(chunk, size - pos)
        if pos % (256 * units.Mi) < chunk or pos + n >= size:
            yield hashlib.sha256(str(pos).encode()).digest() * (n // 32) + b"\x5a" * (n % 32)
        else:
            yield bytes(n)
        pos += n


class ChunkReader(io.RawIOBase):
    """``read(n)`` over ``image_chunks``, like glance's request body (length unknown)."""

    def __init__(self, size: int) -> None:
        self.chunks = image_chunks(size)
        self.buf = b""

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        while len(self.buf) < n or n < 0:
            try:
                self.buf += next(self.chunks)
            except StopIteration:
                break
        out, self.buf = (self.buf, b"") if n < 0 else (self.buf[:n], self.buf[n:])
        return out


def digest_of_image(size: int) -> str:
    h = hashlib.sha256()
    for chunk in image_chunks(size):
        h.update(chunk)
    return h.hexdigest()


def digest_of_device(path: str, size: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        left = size
        while left:
            block = f.read(min(16 * units.Mi, left))
            if not block:
                raise EOFError(f"{path} ends {left} bytes before the image does")
            h.update(block)
            left -= len(block)
    return h.hexdigest()


def run(case: dict[str, Any]) -> dict[str, Any]:
    """Store an image, replay the driver, read the clone back; return what was seen."""
    work = Path(case["work_dir"])
    api_version = case["api_version"]
    size = int(case["image_size"])
    glance_tenant = case.get("glance_tenant_id", "")
    cinder_tenant_id = case.get("cinder_tenant_id", "")
    project_id = case.get("project_id", uuid.uuid4().hex)
    sim = Simulator(
        work / "edf", port=SDK_PORT, media=case.get("media", "file"), api_versions=(api_version,)
    )
    sim.start()
    result: dict[str, Any] = {"api_version": api_version, "image_size": size}
    try:
        options: dict[str, Any] = {"skip_zero_blocks": True}
        if glance_tenant:
            options["tenant_id"] = glance_tenant
        conf = make_conf(sim, "datera1", str(work / "locks"), options)
        store = Store(conf, backend="datera1")
        store.configure(re_raise_bsc=False)
        image_id = str(uuid.uuid4())
        known = case["size_known"]
        store.add(image_id, ChunkReader(size), size if known else 0, "sha256")
        store.close()
        volume = {
            "id": str(uuid.uuid4()),
            "project_id": project_id,
            "size": max(1, -(-size // units.Gi)),  # Cinder's minimum: the image's whole GiB
            "display_name": "boot-from-image",
        }
        result["requested_gib"] = volume["size"]
        api = dfs_sdk.get_api(
            "127.0.0.1",
            "admin",
            "password",
            f"v{api_version}",
            secure=False,
            disable_log=True,
            schema_loc=str(work / "cached-schema"),
        )
        calls = CinderDriverCalls(api, api_version, cinder_tenant_id, sleep=time.sleep)
        started = time.monotonic()
        try:
            calls.clone_image(volume, image_id, updated_at=time.time())
        except dexceptions.ApiError as exc:
            result["error"] = f"{type(exc).__name__}: {exc}"
            return result
        except LookupError as exc:
            result["error"] = f"LookupError: {exc}"
            return result
        result["clone_seconds"] = time.monotonic() - started
        calls.create_export(volume, {"initiator": INITIATOR})
        conn = calls.initialize_connection(volume)
        connector = LocalConnector("unused")
        device = connector.connect_volume({"device_path": conn["device_path"]})
        try:
            result["device_bytes"] = Path(device["path"]).stat().st_size or _blockdev_size(
                device["path"]
            )
            result["equal"] = digest_of_device(device["path"], size) == digest_of_image(size)
        finally:
            connector.disconnect_volume({"device_path": conn["device_path"]}, device)
        tenant = calls.get_tenant(project_id)
        clone = api.app_instances.list(filter=f"match(name,.*{volume['id']}.*)", tenant=tenant)[0]
        si = clone.storage_instances.list(tenant=tenant)[0]
        result["clone_gib"] = si.volumes.list(tenant=tenant)[0].size
        result["acl"] = [i["path"] for i in si.acl_policy.get(tenant=tenant)["initiators"]]
        result["clone_admin_state"] = clone.admin_state
    finally:
        sim.stop()
    return result


def _blockdev_size(path: str) -> int:
    with open(path, "rb") as f:
        return f.seek(0, io.SEEK_END)


def main(argv: list[str]) -> int:
    case = json.loads(argv[0])
    with tempfile.TemporaryDirectory(prefix="cinder-fast-clone-") as tmp:
        case.setdefault("work_dir", tmp)
        print(json.dumps(run(case)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
