"""Datera's Cinder driver's volumes beside glance's images in one tenant, through every command.

Run as a program in a network namespace of its own (``test_cinder_neighbours.py`` does it), for
the reason ``cinder_fast_clone.py`` gives: dfs-sdk 1.2.27 only ever connects to port 7717.

Both drivers use tenant ``/root/images`` (the setting doc/source/cinder.rst recommends). The
neighbours are made with Datera's SDK by the calls Datera/cinder-driver makes
(``src/cinder/volume/drivers/datera/datera_api22.py``, ``datera_common.py`` ``get_name``):

- ``plain``: ``_create_volume_2_2`` + ``_add_vol_meta_2_2``: ``OS-<volume id>``, metadata
  ``host``, ``display_name``, ``bootable``, ``availability_zone``;
- ``bare``: the same with ``datera_enable_metadata`` off: no metadata;
- ``named_image`` / ``named_image_bare``: a volume whose display name is ``IMAGE``, which
  ``get_name`` names ``OS-IMAGE-<volume id>``, with and without metadata;
- ``cache``: ``_cache_vol_2_2``'s image cache of glance image A: ``OS-<A>``, uuid A, one
  snapshot, metadata ``type: cached_image``, offline (its name holds the id of our image);
- ``clone``: ``_clone_image_2_2`` of glance image B: ``OS-<volume id>`` cloned from B's volume.

Next to them: glance images A and B (``Store.add``), a ``datera-glance put`` killed while it
wrote (its upload record names a dead process) and the app instance an upload killed between
its create request and its first metadata write leaves (the create request alone). Then each
command and Store operation runs; after each, every neighbour's app instance (as the simulator
keeps it: name, uuid, descr, admin state, ACL, size, metadata) and the sha256 of its volume are
compared with what they were before that step. Each group of steps gets neighbours (and images
A and B) of its own, so that one step's damage cannot hide the next one's. The program prints
one JSON document: the steps, what each answered, and which neighbours it changed.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from glance_store import location as glance_location
from oslo_utils import units

from datera_glance import naming, ownership, upload_state
from datera_glance.edf import ClientConfig, EdfClient
from datera_glance.simulator import Simulator
from datera_glance.store import Store, StoreLocation
from tests.integration.cinder_fast_clone import SDK_PORT, CinderDriverCalls, dexceptions, dfs_sdk
from tests.plugins.cli import SCRIPT, Cli, conf_text
from tests.plugins.store import make_conf

TENANT_ID = "images"  # both drivers' datera_tenant_id: /root/images
TENANT = "/root/images"
BACKEND = "fast"


class CinderVolumes(CinderDriverCalls):
    """More of the driver's calls: plain volumes, snapshots and its image cache."""

    def __init__(self, api: Any, do_metadata: bool) -> None:
        super().__init__(api, "2.2", TENANT_ID, sleep=time.sleep)
        self.do_metadata = do_metadata

    def get_name(self, volume: dict[str, Any]) -> str:
        """``datera_common.get_name`` (display names here need no ``filter_chars``)."""
        if volume.get("display_name"):
            return f"OS-{volume['display_name']}-{volume['id']}"
        return f"OS-{volume['id']}"

    def create_volume(self, volume: dict[str, Any]) -> None:
        """``_create_volume_2_2`` without a template, on a product before 3.3."""
        app_params = {
            "create_mode": "openstack",
            "uuid": str(volume["id"]),
            "name": self.get_name(volume),
            "access_control_mode": "deny_all",
            "storage_instances": [
                {
                    "name": "storage-1",
                    "ip_pool": {"path": "/access_network_ip_pools/default"},
                    "volumes": [
                        {
                            "name": "volume-1",
                            "size": volume["size"],
                            "replica_count": 3,
                            "snapshot_policies": [],
                            "placement_mode": "hybrid",
                        }
                    ],
                }
            ],
        }
        tenant = self.create_tenant(volume["project_id"])
        self.api.app_instances.create(tenant=tenant, **app_params)
        self.add_vol_meta(volume)

    def add_vol_meta(self, volume: dict[str, Any], connector: dict[str, Any] | None = None) -> None:
        if self.do_metadata:  # datera_enable_metadata
            super().add_vol_meta(volume, connector)

    def create_snapshot(self, volume: dict[str, Any]) -> None:
        """``_create_snapshot_2_2``."""
        tenant = self.get_tenant(volume["project_id"])
        dvol = self.cvol_to_dvol(volume, tenant)
        snap = dvol.snapshots.create(tenant=tenant, uuid=str(uuid.uuid4()))
        for _ in range(20):
            if snap.reload(tenant=tenant).op_state == "available":
                return
            self.sleep(1)

    def cache_image(self, vol: dict[str, Any], write: Callable[[], None]) -> None:
        """``_cache_vol_2_2`` (``write`` stands for attaching and ``qemu-img convert``)."""
        self.create_volume(vol)
        write()
        self.create_snapshot(vol)
        tenant = self.get_tenant(vol["project_id"])
        self.cvol_to_ai(vol, tenant=tenant).metadata.set(tenant=tenant, type="cached_image")
        ai = self.cvol_to_ai(vol, tenant=tenant)  # _detach_volume_2_2: no initiators left
        ai.storage_instances.list(tenant=tenant)[0].acl_policy.set(
            tenant=tenant, initiators=[], initiator_groups=[]
        )
        ai.set(tenant=tenant, admin_state="offline", force=True)


class Cluster:
    """The simulator and what the program knows of it."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.neighbours: dict[str, str] = {}  # role -> app instance id
        self.names: dict[str, str] = {}  # role -> app instance name

    def made(self, role: str, name: str) -> None:
        """Note the neighbour ``role``, just made as ``name``."""
        self.neighbours[role] = str((self.entry(name) or {})["id"])
        self.names[role] = name

    def entry(self, name: str) -> dict[str, Any] | None:
        for ai in self.sim.state()["app_instances"]:
            if ai["name"] == name and ai["tenant"] == TENANT:
                return dict(ai)
        return None

    def write(self, name: str, data: bytes) -> None:
        entry = self.entry(name)
        assert entry is not None, name
        with open(entry["file"], "r+b") as f:
            f.write(data)

    def seen(self) -> dict[str, Any]:
        """Each neighbour as the simulator keeps it, with the sha256 of its volume."""
        found: dict[str, Any] = {}
        by_id = {ai["id"]: ai for ai in self.sim.state()["app_instances"]}
        for role, ai_id in self.neighbours.items():
            ai = by_id.get(ai_id)
            if ai is not None:
                ai = dict(ai, sha256=volume_digest(Path(ai["file"])))
            found[role] = ai
        return found


def volume_digest(path: Path) -> str:
    """sha256 of a sparse volume file's size and data extents (each with its offset): the
    same bytes give the same digest, without reading a GiB of holes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        end = os.fstat(f.fileno()).st_size
        digest.update(str(end).encode())
        pos = 0
        while pos < end:
            try:
                start = os.lseek(f.fileno(), pos, os.SEEK_DATA)
            except OSError:  # ENXIO: only a hole is left
                break
            stop = os.lseek(f.fileno(), start, os.SEEK_HOLE)
            f.seek(start)
            digest.update(f"{start}:".encode() + f.read(stop - start))
            pos = stop
    return digest.hexdigest()


def cinder_neighbours(api: Any, cluster: Cluster, image_a: str, project: str, group: str) -> None:
    """The neighbours of the module docstring except ``clone`` (it needs image B), their
    roles prefixed with ``group:``."""
    with_md, without_md = CinderVolumes(api, True), CinderVolumes(api, False)

    def volume(display_name: str = "") -> dict[str, Any]:
        return {"id": str(uuid.uuid4()), "project_id": project, "size": 1, "host": "cinder@dat",
                "display_name": display_name, "availability_zone": "nova"}  # fmt: skip

    for role, calls, vol in (
        ("plain", with_md, volume("")),
        ("bare", without_md, volume("")),
        ("named_image", with_md, volume("IMAGE")),
        ("named_image_bare", without_md, volume("IMAGE")),
    ):
        calls.create_volume(vol)
        name = calls.get_name(vol)
        cluster.write(name, os.urandom(units.Mi + 7))
        cluster.made(f"{group}:{role}", name)
    cache = {"id": image_a, "project_id": project, "size": 1}
    with_md.cache_image(cache, lambda: cluster.write(f"OS-{image_a}", os.urandom(3 * units.Mi)))
    cluster.made(f"{group}:cache", f"OS-{image_a}")


def cinder_clone(api: Any, cluster: Cluster, image_b: str, project: str, group: str) -> None:
    calls = CinderVolumes(api, True)
    volume = {"id": str(uuid.uuid4()), "project_id": project, "size": 1, "display_name": ""}
    calls.create_cloned_volume(volume, {"id": image_b, "project_id": project, "size": 1})
    cluster.made(f"{group}:clone", f"OS-{volume['id']}")


def killed_put(cli: Cli, cluster: Cluster) -> str:
    """A ``datera-glance put -`` killed while it wrote; its image id."""
    proc = subprocess.Popen(
        [str(SCRIPT), "put", "-", "--config-file", str(cli.conf)],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    assert proc.stdin is not None
    proc.stdin.write(os.urandom(3 * units.Mi))
    proc.stdin.flush()
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            for ai in cluster.sim.state()["app_instances"]:
                if ai["metadata"].get(upload_state.PID) == str(proc.pid):
                    return str(ai["uuid"])
            time.sleep(0.1)
        raise TimeoutError("the upload never recorded itself")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        proc.stdin.close()


def created_only(sim: Simulator) -> str:
    """What an upload killed between ``Store.add``'s create request and its first metadata
    write leaves: the create request alone (the same call, the same body)."""
    image_id = str(uuid.uuid4())
    config = ClientConfig(host=sim.host, port=sim.port, username="admin", password="password",
                          tenant=TENANT, ssl=False)  # fmt: skip
    with EdfClient(config) as client:
        client.create_app_instance(
            naming.ai_name(image_id), uuid=image_id, size_gib=1,
            descr=ownership.marker(image_id),
        )  # fmt: skip
    return image_id


class Steps:
    """Runs the operations; records what each answered and which neighbours it changed."""

    def __init__(self, cluster: Cluster, cli: Cli, store: Store, api: Any) -> None:
        self.cluster, self.cli, self.store, self.api = cluster, cli, store, api
        self.project = uuid.uuid4().hex
        self.before = cluster.seen()
        self.done: list[dict[str, Any]] = []
        self.images: dict[str, dict[str, str]] = {}  # group -> "A"/"B" -> image id

    def neighbourhood(self, group: str) -> dict[str, str]:
        """Fresh neighbours for ``group`` (each destructive step gets its own, so that what
        one step did cannot hide what the next does) beside fresh images A and B of glance's;
        each neighbour's uuid by role (Cinder's volume id; the image id for its cache)."""
        ids = {key: str(uuid.uuid4()) for key in "AB"}
        cinder_neighbours(self.api, self.cluster, ids["A"], self.project, group)
        for key in "AB":
            self.store.add(ids[key], io.BytesIO(os.urandom(2 * units.Mi + 3)), 0, "sha256")
        cinder_clone(self.api, self.cluster, ids["B"], self.project, group)
        self.images[group] = ids
        self.before = self.cluster.seen()
        return {
            role.split(":", 1)[1]: ai["uuid"]
            for role, ai in self.before.items()
            if role.startswith(f"{group}:")
        }

    def record(self, name: str, answer: dict[str, Any]) -> None:
        """``changed``: the neighbours this step changed (or deleted)."""
        now = self.cluster.seen()
        changed = sorted(role for role in self.before if now[role] != self.before[role])
        self.done.append({"step": name, **answer, "changed": changed})
        self.before = now

    def command(self, name: str, *args: str) -> None:
        result = self.cli.run(*args)
        self.record(name, {"rc": result.rc, "out": result.out, "err": result.err})

    def store_call(self, name: str, call: Callable[[], Any]) -> None:
        try:
            value = call()
        except Exception as exc:
            self.record(name, {"raised": type(exc).__name__, "message": str(exc)})
        else:
            self.record(name, {"raised": None, "message": repr(value)[:200]})

    def location(self, leaf: str, tenant: str = "") -> Any:
        uri = f"datera://{self.cluster.sim.host}:{SDK_PORT}{tenant}/app_instances/{leaf}"
        return glance_location.Location(
            "datera", StoreLocation, self.store.conf, uri=uri, backend=BACKEND
        )


def operations(steps: Steps) -> None:
    """Every command and Store operation of the issue, each group on fresh neighbours."""
    vid = steps.neighbourhood("look")
    steps.command("ls", "ls", "--json")
    steps.command("ls --all", "ls", "--all", "--json")
    for role in ("plain", "named_image", "clone"):
        steps.command(f"show {role}", "show", vid[role], "--json")
        steps.command(f"verify {role}", "verify", vid[role], "--json")
    steps.command("show A", "show", steps.images["look"]["A"], "--json")
    untagged = steps.images["look"]["untagged"] = str(uuid.uuid4())
    steps.store.add(untagged, io.BytesIO(os.urandom(units.Mi)), units.Mi, "sha256")
    ai = steps.api.app_instances.list(filter=f"match(name,.*{untagged}.*)", tenant=TENANT)[0]
    ai.metadata.set(tenant=TENANT, type="")  # an image of ours loses its tag
    steps.command("verify --all", "verify", "--all", "--json")
    steps.command("check", "check", "--json")
    vid = steps.neighbourhood("rm")
    for role in ("plain", "named_image", "clone"):
        steps.command(f"rm {role}", "rm", vid[role], "--json")
    steps.command("rm A", "rm", steps.images["rm"]["A"], "--json")  # its cache stays
    vid = steps.neighbourhood("add")
    data = io.BytesIO(os.urandom(units.Mi))
    steps.store_call(
        "add over named_image_bare",
        lambda: steps.store.add(vid["named_image_bare"], data, units.Mi, "sha256"),
    )
    vid = steps.neighbourhood("delete")
    for role, leaf, tenant in (
        ("named_image", vid["named_image"], ""),  # the original driver's tenant-less URI
        ("cache", f"OS-{vid['cache']}", ""),  # its first version's form, Cinder's cache there
        ("plain", f"OS-{vid['plain']}", TENANT),
        ("bare", f"OS-{vid['bare']}", ""),
    ):
        where = steps.location(leaf, tenant)
        steps.store_call(f"delete {role}", functools.partial(steps.store.delete, where))
        steps.store_call(f"get_size {role}", functools.partial(steps.store.get_size, where))
    b = steps.location(steps.images["delete"]["B"], TENANT)
    steps.store_call("delete B", lambda: steps.store.delete(b))  # its clone stays
    steps.neighbourhood("gc")
    steps.command("gc dry run", "gc", "--older-than", "0", "--json")
    steps.command("gc --apply", "gc", "--older-than", "0", "--apply", "--json")
    steps.store_call("reclaim", lambda: steps.store.configure(re_raise_bsc=True))
    steps.command("ls at the end", "ls", "--all", "--json")


def run(work: Path) -> dict[str, Any]:
    sim = Simulator(work / "edf", port=SDK_PORT, api_versions=("2.2",))
    sim.start()
    try:
        locks = work / "locks"
        locks.mkdir(mode=0o700)
        conf = work / "glance-api.conf"
        conf.write_text(conf_text(sim, locks, backend=BACKEND, tenant_id=TENANT_ID))
        cli = Cli(conf)
        store = Store(make_conf(sim, BACKEND, str(locks), {"tenant_id": TENANT_ID}), BACKEND)
        store.configure(re_raise_bsc=True)
        api = dfs_sdk.get_api("127.0.0.1", "admin", "password", "v2.2", secure=False,
                              disable_log=True, schema_loc=str(work / "cached-schema"))  # fmt: skip
        cluster = Cluster(sim)
        ids = {"killed": killed_put(cli, cluster), "created_only": created_only(sim)}
        descrs = {k: (cluster.entry(f"OS-IMAGE-{v}") or {}).get("descr") for k, v in ids.items()}
        steps = Steps(cluster, cli, store, api)
        try:
            operations(steps)
        finally:
            store.close()
        left = {ai["name"] for ai in sim.state()["app_instances"]}
        seen = cluster.seen()
        return {
            "leftovers": ids,
            "leftover_descrs": descrs,
            "images": steps.images,
            "names": cluster.names,
            "steps": steps.done,
            "ours_left": sorted(name for name in left if name.startswith("OS-IMAGE-")),
            "neighbours": sorted(cluster.neighbours),
            "neighbours_left": sorted(role for role, ai in seen.items() if ai),
        }
    except dexceptions.ApiError as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    finally:
        sim.stop()


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="cinder-neighbours-") as tmp:
        os.chmod(tmp, 0o700)
        with contextlib.redirect_stdout(sys.stderr):
            result = run(Path(tmp))
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
