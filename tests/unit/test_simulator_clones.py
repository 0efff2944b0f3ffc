"""Clones (``clone_volume_src``, ``clone_snapshot_src``) and volume snapshots on the simulator.

Evidence (see the simulator README, "Clones and snapshots"):

- the real v2.1 ``/api`` (``simulator/data/api_21.json``): ``POST /app_instances`` takes
  ``clone_volume_src``/``clone_snapshot_src`` ``{path}`` (``additionalProperties: false``), a
  volume's ``size`` is 1..32768 GiB, snapshots live under
  ``.../volumes/:volume_name/snapshots[/:timestamp]`` and take ``{uuid}``;
- Datera/cinder-driver ``datera_api22.py``: ``_create_cloned_volume_2_2`` sends no size and
  extends afterwards only when the Cinder volume is larger; ``_clone_image_2_2`` sets the clone's
  size with an offline flip (``_offline_flip_2_2``, ``dvol.set(size=...)``), also to the size
  it already has; ``_cache_vol_2_2`` deletes a stale cached image volume (one that clones were
  made from) with a plain ``ai.delete(force=True)``; ``_get_vol_timestamp_2_2`` reads
  ``float(snapshots[0].utc_ts)``; ``datera_common.SNAP_RE`` is ``\\d{10,}\\.\\d+``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from oslo_utils import units

from datera_glance.simulator import Simulator
from tests.plugins.simulator import Edf

VOL = "/storage_instances/storage-1/volumes/volume-1"


def _device(ai: dict[str, Any]) -> str:
    return ai["storage_instances"][0]["access"]["device_path"]


def _write(path: str, offset: int, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.pwrite(fd, data, offset)
        os.fsync(fd)
    finally:
        os.close(fd)


def _read(path: str, offset: int, length: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read(length)


def _clone(edf: Edf, name: str, source_path: str, *, expect: int = 200, **extra: Any) -> Any:
    """The new app instance (200), else the error body."""
    body = {"name": name, "create_mode": "openstack", "clone_volume_src": {"path": source_path}}
    out = edf.call("POST", "/app_instances", json={**body, **extra}, expect=expect)
    return out["data"] if expect == 200 else out


def _vol_path(ai: dict[str, Any]) -> str:
    return ai["storage_instances"][0]["volumes"][0]["path"]


def test_clone_has_the_source_bytes_of_that_moment_and_its_own_afterwards(edf: Edf) -> None:
    src = edf.create_ai("image-src", size=2)["data"]
    _write(_device(src), 0, b"A" * 4096)
    _write(_device(src), units.Gi + 12345, b"tail")
    clone = _clone(edf, "clone-1", _vol_path(src))

    assert clone["admin_state"] == "online"
    si = clone["storage_instances"][0]
    assert (si["name"], si["volumes"][0]["name"], si["volumes"][0]["size"]) == (
        "storage-1",
        "volume-1",
        2,
    )
    assert si["acl_policy"]["initiators"] == []
    assert (
        clone["id"] != src["id"]
        and si["volumes"][0]["uuid"] != src["storage_instances"][0]["volumes"][0]["uuid"]
    )
    dev = _device(clone)
    assert os.path.getsize(dev) == 2 * units.Gi
    assert _read(dev, 0, 4096) == b"A" * 4096
    assert _read(dev, units.Gi + 12345, 4) == b"tail"
    assert _read(dev, 8192, 4096) == bytes(4096)

    # Independent afterwards, both ways.
    _write(_device(src), 0, b"B" * 4096)
    _write(dev, 4096, b"C" * 4096)
    assert _read(dev, 0, 4096) == b"A" * 4096
    assert _read(_device(src), 4096, 4096) == bytes(4096)


def test_clone_size_rules_grow_offline_never_shrink(edf: Edf) -> None:
    src = edf.create_ai("image-src", size=1)["data"]
    clone = _clone(edf, "clone-1", _vol_path(src))
    ai_path = f"/app_instances/{clone['id']}"
    vol = ai_path + VOL
    edf.call("PUT", vol, json={"size": 2}, expect=400)  # online
    edf.call("PUT", ai_path, json={"admin_state": "offline", "force": True})
    edf.call("PUT", vol, json={"size": 1})  # the size it has: what _clone_image_2_2 may send
    edf.call("PUT", vol, json={"size": 0.5}, expect=422)  # the schema's minimum is 1
    edf.call("PUT", vol, json={"size": 3})
    edf.call("PUT", vol, json={"size": 2}, expect=400)  # never shrinks
    assert edf.call("GET", vol)["data"]["size"] == 3
    edf.call("PUT", ai_path, json={"admin_state": "online"})
    assert os.path.getsize(_device(edf.call("GET", ai_path)["data"])) == 3 * units.Gi
    # The source is untouched.
    assert edf.call("GET", f"/app_instances/{src['id']}{VOL}")["data"]["size"] == 1


def test_deleting_a_clones_source_leaves_the_clone_whole(edf: Edf) -> None:
    src = edf.create_ai("image-src", size=1)["data"]
    _write(_device(src), 0, b"image" * 100)
    clone = _clone(edf, "clone-1", _vol_path(src))
    edf.call("DELETE", f"/app_instances/{src['id']}", json={"force": True})
    edf.call("GET", f"/app_instances/{src['id']}", expect=404)
    again = edf.call("GET", f"/app_instances/{clone['id']}")["data"]
    assert _read(_device(again), 0, 500) == b"image" * 100


def test_clone_requests_edf_refuses(edf: Edf) -> None:
    src = edf.create_ai("image-src", size=1)["data"]
    path = _vol_path(src)
    # Schema: clone_volume_src is {path} and nothing else.
    body = {"name": "clone-1x", "clone_volume_src": {"path": path, "size": 2}}
    assert (
        "clone_volume_src" in edf.call("POST", "/app_instances", json=body, expect=422)["message"]
    )
    out = _clone(edf, "clone-2x", f"/app_instances/{src['id']}", expect=422)
    assert "valid path to a volume" in out["message"]
    _clone(edf, "clone-3x", f"/app_instances/{src['id']}/storage_instances/storage-1/volumes/nope",
           expect=404)  # fmt: skip
    _clone(edf, "clone-4x", path, expect=400, storage_instances=[{"name": "storage-1"}])
    _clone(edf, "image-src", path, expect=409)  # the name is taken
    edf.call("POST", "/tenants", json={"name": "tenant_b"})
    other = Edf(edf.sim, tenant="/root/tenant_b")
    try:
        _clone(other, "clone-5x", path, expect=404)  # the source is another tenant's
    finally:
        other.close()
    names = [ai["name"] for ai in edf.call("GET", "/app_instances")["data"]]
    assert names == ["image-src"]


def test_clone_needs_capacity_for_its_size(simulator_factory: Callable[..., Simulator]) -> None:
    sim = simulator_factory(capacity_bytes=3 * units.Gi)
    edf = Edf(sim)
    try:
        src = edf.create_ai("image-src", size=2)["data"]
        body = _clone(edf, "clone-1", _vol_path(src), expect=422)
        assert body["name"] == "InsufficientCapacityError"
        assert sorted(p.name for p in (sim.data_dir / "volumes").iterdir()) == [
            Path(_device(src)).name
        ]
    finally:
        edf.close()


def test_snapshots_list_create_clone_delete(simulator_factory: Callable[..., Simulator]) -> None:
    sim = simulator_factory()
    edf = Edf(sim, version="2.1")
    try:
        src = edf.create_ai("image-src", size=1)["data"]
        snaps = f"/app_instances/{src['id']}{VOL}/snapshots"
        assert edf.call("GET", snaps)["data"] == []
        _write(_device(src), 0, b"first")
        uuid = "3f2e7a34-1b4c-4d5e-8f90-123456789abc"
        snap = edf.call("POST", snaps, json={"uuid": uuid})["data"]
        edf.call("POST", snaps, json={"uuid": uuid}, expect=409)
        edf.call("POST", snaps, json={"name": "x"}, expect=422)  # schema: uuid only
        assert re.fullmatch(r"\d{10,}\.\d+", snap["utc_ts"])  # cinder-driver's SNAP_RE
        assert snap["uuid"] == uuid and snap["op_state"] == "available"
        assert snap["path"] == f"{snaps}/{snap['utc_ts']}"
        _write(_device(src), 0, b"later")

        listed = edf.call("GET", snaps)["data"]
        assert [s["uuid"] for s in listed] == [uuid]
        assert edf.call("GET", f"{snaps}/{snap['utc_ts']}")["data"]["uuid"] == uuid
        vol = edf.call("GET", f"/app_instances/{src['id']}{VOL}")["data"]
        assert [s["utc_ts"] for s in vol["snapshots"]] == [snap["utc_ts"]]

        body = {"name": "from-snap", "clone_snapshot_src": {"path": snap["path"]}}
        clone = edf.call("POST", "/app_instances", json=body)["data"]
        assert _read(_device(clone), 0, 5) == b"first"

        # Snapshots survive a restart (journal, then snapshot file).
        sim.stop()
        sim.start()
        edf.login()
        assert [s["uuid"] for s in edf.call("GET", snaps)["data"]] == [uuid]
        edf.call("DELETE", f"{snaps}/{snap['utc_ts']}")
        assert edf.call("GET", snaps)["data"] == []
        edf.call("GET", f"{snaps}/{snap['utc_ts']}", expect=404)
        again = edf.call("GET", f"/app_instances/{clone['id']}")["data"]
        assert _read(_device(again), 0, 5) == b"first"
        assert not list((sim.data_dir / "volumes").glob("*.snap"))
    finally:
        edf.close()


@pytest.mark.root
def test_clone_on_loop_media(loop_simulator: Simulator) -> None:
    edf = Edf(loop_simulator)
    try:
        src = edf.create_ai("image-src", size=1)["data"]
        assert _device(src).startswith("/dev/loop")
        payload = os.urandom(64 * 1024)
        fd = os.open(_device(src), os.O_WRONLY)
        try:
            os.pwrite(fd, payload, 0)
            os.fsync(fd)
        finally:
            os.close(fd)
        clone = _clone(edf, "clone-1", _vol_path(src))
        assert _device(clone).startswith("/dev/loop") and _device(clone) != _device(src)
        assert _read(_device(clone), 0, len(payload)) == payload
    finally:
        edf.close()
