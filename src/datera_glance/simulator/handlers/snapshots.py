"""A volume's snapshots: ``/app_instances/:id/storage_instances/:si/volumes/:vol/snapshots``.

A snapshot keeps the volume's bytes of that moment in a file of its own (a reflink or a copy,
like a clone's), so that ``clone_snapshot_src`` can clone it later. Its collection key is
``utc_ts``, ``"{sec}.{nsec}"``.
"""

from __future__ import annotations

import time
import uuid as uuidlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from datera_glance.simulator import schema
from datera_glance.simulator.handlers.clones import find_snapshot
from datera_glance.simulator.listing import listing
from datera_glance.simulator.media import copy_volume_file
from datera_glance.simulator.model import Snapshot, Volume
from datera_glance.simulator.routing import ApiError, Request, route

if TYPE_CHECKING:
    from datera_glance.simulator.cluster import Cluster

_SNAPSHOTS = "/app_instances/*/storage_instances/*/volumes/*/snapshots"


@route("GET", _SNAPSHOTS)
def list_snapshots(cluster: Cluster, req: Request, ident: str, si_name: str, vol: str) -> Any:
    ai, si, volume = cluster.volume(req, ident, si_name, vol)
    return listing(req, [cluster.render.snapshot(ai, si, volume, s) for s in volume.snapshots])


@route("POST", _SNAPSHOTS, schema.SNAPSHOTS)
def create_snapshot(cluster: Cluster, req: Request, ident: str, si_name: str, vol: str) -> Any:
    ai, si, volume = cluster.volume(req, ident, si_name, vol)
    snap_uuid = req.body.get("uuid") or str(uuidlib.uuid4())
    if any(s.uuid == snap_uuid for s in volume.snapshots):
        raise ApiError(409, f"Snapshot {snap_uuid} already exists on {ai.name}/{volume.name}")
    utc_ts = _next_utc_ts(volume)
    file = cluster.snapshot_file(volume.uuid, utc_ts)
    try:
        copy_volume_file(Path(volume.file), file)
    except OSError as exc:
        raise ApiError(500, f"Could not snapshot {volume.name} of {ai.name}: {exc}") from exc
    snap = Snapshot(uuid=snap_uuid, utc_ts=utc_ts, size=volume.size, file=str(file))
    volume.snapshots.append(snap)
    cluster.save(ai)
    return cluster.render.snapshot(ai, si, volume, snap)


@route("GET", _SNAPSHOTS + "/*")
def get_snapshot(
    cluster: Cluster, req: Request, ident: str, si_name: str, vol: str, key: str
) -> Any:
    ai, si, volume = cluster.volume(req, ident, si_name, vol)
    snap = find_snapshot(volume, key, f"{ai.name}/{si.name}/{volume.name}")
    return cluster.render.snapshot(ai, si, volume, snap)


@route("DELETE", _SNAPSHOTS + "/*", schema.SNAPSHOT)
def delete_snapshot(
    cluster: Cluster, req: Request, ident: str, si_name: str, vol: str, key: str
) -> Any:
    ai, si, volume = cluster.volume(req, ident, si_name, vol)
    snap = find_snapshot(volume, key, f"{ai.name}/{si.name}/{volume.name}")
    rendered = cluster.render.snapshot(ai, si, volume, snap)
    # Clones made from it keep their own files.
    Path(snap.file).unlink(missing_ok=True)
    volume.snapshots.remove(snap)
    cluster.save(ai)
    return rendered


def _next_utc_ts(volume: Volume) -> str:
    """Now as ``"{sec}.{nsec}"``, later than the volume's last snapshot (the key is unique)."""
    now = time.time_ns()
    if volume.snapshots:
        sec, nsec = volume.snapshots[-1].utc_ts.split(".")
        now = max(now, int(sec) * 10**9 + int(nsec) + 1)
    return f"{now // 10**9}.{now % 10**9:09d}"
