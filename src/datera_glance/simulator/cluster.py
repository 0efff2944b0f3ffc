"""The simulated cluster: its state, sessions, capacity and devices, and request dispatch.

No HTTP here: ``Cluster.handle(Request) -> Response`` finds the handler in ``routing.API``
(filled by ``simulator.handlers``), checks the session, tenant and body schema, runs the
handler under the one state lock and persists its changes before the answer. The HTTP server
calls ``handle`` from many threads at once.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
import uuid as uuidlib
from collections.abc import Callable, Iterable
from pathlib import Path

from datera_glance.simulator import handlers, schema
from datera_glance.simulator.iscsi import LioTargets
from datera_glance.simulator.media import Media, MediaError, make_private
from datera_glance.simulator.model import (
    AppInstance,
    Snapshot,
    State,
    StorageInstance,
    Stored,
    Volume,
)
from datera_glance.simulator.persistence import StateFiles
from datera_glance.simulator.render import Renderer, envelope
from datera_glance.simulator.routing import API, ApiError, Request, Response
from datera_glance.simulator.sessions import INVALID_SESSION, Sessions
from datera_glance.simulator.work import Work

LOG = logging.getLogger(__name__)

_VERB = {"POST": "create", "PUT": "update", "DELETE": "delete"}

assert handlers.MODULES  # importing the handlers fills routing.API


_UTC_TS = re.compile(r"\d+\.\d+")


def _canonical_uuid(text: str) -> str | None:
    try:
        return str(uuidlib.UUID(text))
    except ValueError:
        return None


def version_tuple(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", v))


class Cluster:
    def __init__(
        self,
        data_dir: Path,
        *,
        media: Media,
        username: str,
        password: str,
        capacity_bytes: int,
        api_versions: Iterable[str],
        sw_version: str,
        session_ttl: float,
        available_delay: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
        work: Work | None = None,
        targets: LioTargets | None = None,
    ) -> None:
        self.data_dir = data_dir
        # With real iSCSI targets (--iscsi) storage instances report their portals as ips.
        self.targets = targets
        self.portals: tuple[str, ...] = targets.portals if targets else ("127.0.0.1",)
        self.work = work or Work()
        self.media = media
        self.username = username
        self.password = password
        self.capacity_bytes = capacity_bytes
        self.api_versions = tuple(api_versions)
        self.sw_version = sw_version
        # int_ecosystem_data and volumes' placement_policy exist from 3.3 on.
        self.ecosystem = version_tuple(sw_version) >= (3, 3)
        self.clock = clock
        self.lock = threading.RLock()
        self.state_files = StateFiles(data_dir, self.work)
        self.state = State()  # until load()
        self.sessions = Sessions(session_ttl, clock)
        self.render = Renderer(
            placement_policy=self.ecosystem,
            available_delay=available_delay,
            clock=clock,
            work=self.work,
        )
        self.system_uuid = str(uuidlib.uuid4())
        self.volume_dir = data_dir / "volumes"

    # ---- lifecycle -------------------------------------------------------------------

    def load(self) -> None:
        """Read the state files (if any), clean stale devices, re-attach online volumes."""
        with self.lock:
            self.state = self.state_files.load()
            for ai in self.state.app_instances.values():
                for vol in ai.volumes:
                    self._own_files(vol)
                    self.media.cleanup(Path(vol.file))
                    vol.device_path = None
            try:
                for ai in self.state.app_instances.values():
                    if ai.admin_state == "online":
                        self.attach(ai)
            except MediaError:
                self.detach_all()  # start() fails: leave no device behind
                raise
            self.state_files.compact(self.state)

    # ---- volume and snapshot files: named by uuid, in volume_dir only -------------------

    def volume_file(self, vol_uuid: str) -> Path:
        """Where a volume's bytes live; ``ValueError`` unless ``vol_uuid`` is a UUID."""
        if _canonical_uuid(vol_uuid) != vol_uuid:
            raise ValueError(f"volume uuid {vol_uuid!r} in the state files is not a UUID")
        return self.volume_dir / f"{vol_uuid}.img"

    def snapshot_file(self, vol_uuid: str, utc_ts: str) -> Path:
        """Where a snapshot's bytes live; ``ValueError`` unless ``utc_ts`` is ``sec.nsec``."""
        if not _UTC_TS.fullmatch(utc_ts):
            raise ValueError(f"snapshot utc_ts {utc_ts!r} in the state files is not sec.nsec")
        return self.volume_file(vol_uuid).parent / f"{vol_uuid}.{utc_ts}.snap"

    def _own_files(self, vol: Volume) -> None:
        """Derive ``vol``'s file names from its uuid: the state files' ``file`` fields are
        never trusted (an edited one made root unlink any file), and make them 0600."""
        files: list[tuple[Volume | Snapshot, Path]] = [(vol, self.volume_file(vol.uuid))]
        files += [(s, self.snapshot_file(vol.uuid, s.utc_ts)) for s in vol.snapshots]
        for obj, path in files:
            if obj.file != str(path):
                LOG.warning(
                    "state files name %s for volume %s; its files live only in %s: using %s",
                    obj.file,
                    vol.uuid,
                    self.volume_dir,
                    path,
                )
                obj.file = str(path)
            make_private(path)

    def save(self, obj: Stored) -> None:
        """Note that ``obj`` was created or changed: persisted before the answer (and an
        online app instance's ACL and CHAP reach its iSCSI targets)."""
        self.state_files.save(obj)
        if self.targets is not None and self._served(obj):
            assert isinstance(obj, AppInstance)
            self.targets.serve(obj)

    def _served(self, obj: Stored) -> bool:
        """Is ``obj`` an app instance whose targets exist (online and not deleted)?"""
        return (
            isinstance(obj, AppInstance)
            and obj.admin_state == "online"
            and obj.id in self.state.app_instances
        )

    def save_removal(self, obj: Stored) -> None:
        """Note that ``obj`` was deleted: persisted before the answer."""
        self.state_files.save_removal(obj)

    def commit(self) -> None:
        """End of a request's changes (under the lock): one journal line for all of them."""
        self.state_files.commit()
        if self.state_files.needs_compaction():
            self.state_files.compact(self.state)

    def flush(self) -> None:
        """Persist every change committed so far; called outside the lock, before answering."""
        self.state_files.flush()

    def compact(self) -> None:
        """Rewrite the snapshot, emptying the journal (at stop)."""
        with self.lock:
            self.state_files.compact(self.state)

    def detach_all(self) -> None:
        """Detach every device (stop); the state keeps admin states for the next start."""
        with self.lock:
            errors = []
            for ai in self.state.app_instances.values():
                try:
                    self.detach(ai)
                except MediaError as exc:
                    errors.append(str(exc))
            if errors:
                raise MediaError("; ".join(errors))

    def devices(self) -> list[str]:
        """The loop devices attached now (none with file media)."""
        with self.lock:
            return [
                vol.device_path
                for ai in self.state.app_instances.values()
                for vol in ai.volumes
                if vol.device_path and self.media.name == "loop"
            ]

    # ---- request dispatch ------------------------------------------------------------

    def handle(self, req: Request) -> Response:
        route, args = API.resolve(req.method, req.path, req.segments)
        with self.lock:
            if route.auth:
                self._check_session(req)
                self._check_tenant(req)
            try:
                if route.schema_key is not None and req.method in _VERB:
                    self.validate(req, route.schema_key)
                result = route.handler(self, req, *args)
            finally:
                self.commit()  # what a failed handler changed is kept too, as in memory
        self.flush()
        if isinstance(result, Response):
            return result
        return Response(200, envelope(req, result))

    def _check_session(self, req: Request) -> None:
        if not self.sessions.touch(req.headers.get("Auth-Token") or ""):
            raise ApiError(401, INVALID_SESSION, name="InvalidSessionKeyError")

    def _check_tenant(self, req: Request) -> None:
        tenant = req.headers.get("tenant") or "/root"
        if tenant not in self.state.tenants:
            raise ApiError(404, f"Tenant {tenant} does not exist")
        req.tenant = tenant

    def validate(self, req: Request, key: str) -> None:
        """422 unless the body is valid for ``req.method`` on the schema entry ``key``."""
        verb = _VERB[req.method]
        body = {} if req.body is None else req.body
        if not isinstance(body, dict):
            raise ApiError(
                422, "Request body must be a JSON object", errors=["body: not an object"]
            )
        req.body = body
        errors = schema.validate(req.version, key, verb, body)
        if errors:
            raise ApiError(422, f"Validation failed: {errors[0]}", errors=errors)

    # ---- lookups (404 when missing or in another tenant) -----------------------------

    def app_instance(self, req: Request, ident: str) -> AppInstance:
        ai = self.state.app_instance(req.tenant, ident)
        if ai is None:
            raise ApiError(404, f"App instance {ident} does not exist")
        return ai

    def storage_instance(
        self, req: Request, ai_ident: str, si_name: str
    ) -> tuple[AppInstance, StorageInstance]:
        ai = self.app_instance(req, ai_ident)
        for si in ai.storage_instances:
            if si.name == si_name:
                return ai, si
        raise ApiError(404, f"Storage instance {si_name} does not exist in {ai.name}")

    def volume(
        self, req: Request, ai_ident: str, si_name: str, vol_name: str
    ) -> tuple[AppInstance, StorageInstance, Volume]:
        ai, si = self.storage_instance(req, ai_ident, si_name)
        for vol in si.volumes:
            if vol.name == vol_name:
                return ai, si, vol
        raise ApiError(404, f"Volume {vol_name} does not exist in {ai.name}/{si.name}")

    # ---- capacity --------------------------------------------------------------------

    def set_capacity(self, nbytes: int) -> None:
        with self.lock:
            self.capacity_bytes = int(nbytes)

    def used_bytes(self) -> int:
        return self.state.used_bytes()

    def need_capacity(self, nbytes: int) -> None:
        available = self.capacity_bytes - self.used_bytes()
        if nbytes > available:
            raise ApiError(
                422,
                f"Insufficient capacity: {nbytes} bytes requested, {max(0, available)} available",
                name="InsufficientCapacityError",
            )

    # ---- devices: online means attached ----------------------------------------------

    def set_admin_state(self, ai: AppInstance, state: str) -> None:
        if state == ai.admin_state:
            return
        try:
            if state == "online":
                self.attach(ai)
            else:
                self.detach(ai)
        except MediaError as exc:
            raise ApiError(500, f"Could not set {ai.name} {state}: {exc}") from exc
        ai.admin_state = state

    def attach(self, ai: AppInstance) -> None:
        attached: list[Volume] = []
        try:
            for vol in ai.volumes:
                if vol.device_path is None:
                    vol.device_path = self.media.attach(Path(vol.file))
                    attached.append(vol)
            if self.targets is not None:
                self.targets.serve(ai)
        except MediaError:
            if self.targets is not None:
                with contextlib.suppress(MediaError):
                    self.targets.remove(ai)
            for vol in attached:
                self._detach_volume(vol)
            raise
        ai.online_since = self.clock()

    def detach(self, ai: AppInstance) -> None:
        if self.targets is not None:
            self.targets.remove(ai)
        for vol in ai.volumes:
            self._detach_volume(vol)

    def _detach_volume(self, vol: Volume) -> None:
        if vol.device_path is not None:
            self.media.detach(vol.device_path, Path(vol.file))
            vol.device_path = None
