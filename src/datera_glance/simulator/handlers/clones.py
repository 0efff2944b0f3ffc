"""App instances made from another volume's bytes: ``clone_volume_src``, ``clone_snapshot_src``.

What is modelled, and on what evidence, is in the simulator's README ("Clones and
snapshots"). In short: the clone is a new app instance with one storage instance and one
volume named like the source's, of the source's size, holding the source's bytes of that
moment in a file of its own (a reflink or a copy), so it lives on when its source is deleted.
"""

from __future__ import annotations

import re
import uuid as uuidlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from datera_glance.simulator.model import Snapshot, StorageInstance, Volume, new_iqn
from datera_glance.simulator.routing import ApiError, Request

if TYPE_CHECKING:
    from datera_glance.simulator.cluster import Cluster

CLONE_KEYS = ("clone_volume_src", "clone_snapshot_src")
_VOLUME_PATH = re.compile(r"/app_instances/([^/]+)/storage_instances/([^/]+)/volumes/([^/]+)")
_SNAPSHOT_PATH = re.compile(_VOLUME_PATH.pattern + r"/snapshots/([^/]+)")


@dataclass(frozen=True)
class CloneSource:
    """Where a clone's bytes come from and what its volume looks like."""

    si_name: str
    volume: Volume
    size: float  # GiB
    file: Path


def clone_source(cluster: Cluster, req: Request) -> CloneSource | None:
    """The source a validated ``POST /app_instances`` body names, or None for a plain create.

    The source must be seen from the request's tenant (404 otherwise, like every lookup).
    """
    body = req.body
    given = [k for k in CLONE_KEYS if k in body]
    if not given:
        return None
    if len(given) > 1 or "storage_instances" in body:
        others = ", ".join([*given[1:], "storage_instances"])
        raise ApiError(400, f"{given[0]} cannot be combined with {others}")
    key = given[0]
    path = body[key]["path"]
    pattern = _VOLUME_PATH if key == "clone_volume_src" else _SNAPSHOT_PATH
    match = pattern.fullmatch(path)
    if match is None:
        what = "volume" if key == "clone_volume_src" else "snapshot"
        raise ApiError(
            422,
            f"Validation failed: {key}: Must be a valid path to a {what}",
            errors=[f"{key}.path: Must be a valid path to a {what}"],
        )
    ai, si, vol = cluster.volume(req, *match.groups()[:3])
    if key == "clone_volume_src":
        return CloneSource(si.name, vol, vol.size, Path(vol.file))
    snap = find_snapshot(vol, match.group(4), f"{ai.name}/{si.name}/{vol.name}")
    return CloneSource(si.name, vol, snap.size, Path(snap.file))


def find_snapshot(vol: Volume, key: str, where: str) -> Snapshot:
    for snap in vol.snapshots:
        if key in (snap.utc_ts, snap.uuid):
            return snap
    raise ApiError(404, f"Snapshot {key} does not exist in {where}")


def cloned_storage_instance(cluster: Cluster, source: CloneSource) -> StorageInstance:
    """The clone's storage instance: fresh identity, no ACL, no CHAP, the source's volume shape."""
    vol_uuid = str(uuidlib.uuid4())
    vol = Volume(
        name=source.volume.name,
        uuid=vol_uuid,
        size=source.size,
        replica_count=source.volume.replica_count,
        placement_mode=source.volume.placement_mode,
        file=str(cluster.volume_file(vol_uuid)),
    )
    return StorageInstance(
        name=source.si_name,
        uuid=str(uuidlib.uuid4()),
        iqn=new_iqn(),
        ips=list(cluster.portals),
        volumes=[vol],
    )


def copies_of(source: CloneSource | None, sis: list[StorageInstance]) -> dict[str, Path]:
    """Volume uuid -> the file its bytes are copied from (empty for a plain create)."""
    if source is None:
        return {}
    return {sis[0].volumes[0].uuid: source.file}
