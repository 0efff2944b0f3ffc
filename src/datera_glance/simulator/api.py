"""The simulated cluster: EDF v2.1/v2.2 resources, sessions, tenants and capacity.

No HTTP here: ``Cluster.handle(Request) -> Response``. One re-entrant lock guards all state;
the HTTP server calls ``handle`` from many threads at once.
"""

from __future__ import annotations

import logging
import re
import secrets
import threading
import time
import uuid as uuidlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datera_glance.simulator import schema
from datera_glance.simulator.backends import (
    Backend,
    BackendError,
    create_volume_file,
    grow_volume_file,
)
from datera_glance.simulator.model import (
    AppInstance,
    GiB,
    Initiator,
    StorageInstance,
    Store,
    Tenant,
    Volume,
    dump_json,
    write_json_atomic,
)

LOG = logging.getLogger(__name__)

INVALID_SESSION = "The key provided with the request does not correspond to a valid session."
HIDDEN = "(hidden)"
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
STORAGE_NODE = "/storage_nodes/5b2a6a9e-0d3c-4c1e-9a57-5e1a2b3c4d5e"

# EDF error names by HTTP status, for errors and injected faults. The numeric ``code`` values
# of the real product are not documented; these are the simulator's own.
ERROR_NAMES: dict[int, str] = {
    400: "InvalidRequestError",
    401: "AuthFailedError",
    403: "PermissionDeniedError",
    404: "NotFoundError",
    405: "InvalidRouteError",
    409: "ConflictError",
    422: "ValidationFailedError",
    500: "InternalError",
    503: "ServiceUnavailableError",
}
ERROR_CODES: dict[str, int] = {
    "InvalidRequestError": 1,
    "AuthFailedError": 2,
    "InvalidSessionKeyError": 3,
    "PermissionDeniedError": 4,
    "NotFoundError": 5,
    "InvalidRouteError": 6,
    "ConflictError": 7,
    "ValidationFailedError": 8,
    "InsufficientCapacityError": 9,
    "InternalError": 10,
    "ServiceUnavailableError": 11,
}


class ApiError(Exception):
    """An EDF error response."""

    def __init__(
        self, status: int, message: str, *, name: str | None = None, errors: Iterable[str] = ()
    ) -> None:
        super().__init__(message)
        self.status = status
        self.name = name or ERROR_NAMES.get(status, "InternalError")
        self.message = message
        self.errors = list(errors)


def error_body(
    status: int, name: str, message: str, errors: list[str], *, version: str, path: str, op: str
) -> dict[str, Any]:
    return {
        "name": name,
        "code": ERROR_CODES.get(name, 0),
        "http": status,
        "message": message,
        "errors": errors,
        "ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "version": f"v{version}" if version else "",
        "op": op,
        "path": path,
        "api_req_id": secrets.randbelow(2**31),
    }


@dataclass
class Request:
    method: str
    version: str  # "2.1" / "2.2"
    path: str  # after the version prefix, no query string, e.g. "/app_instances/x"
    query: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    body: Any = None
    tenant: str = "/root"

    @property
    def segments(self) -> list[str]:
        return [s for s in self.path.split("/") if s]


@dataclass
class Response:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[["Cluster", Request, list[str]], Any]

# (method, path pattern, schema key, needs auth). "*" is one segment, "**" the rest.
_ROUTES: list[tuple[str, tuple[str, ...], str | None, bool, str]] = []


def route(
    method: str, pattern: str, key: str | None = None, *, auth: bool = True
) -> Callable[[Handler], Handler]:
    def deco(fn: Handler) -> Handler:
        segs = tuple(s for s in pattern.split("/") if s)
        _ROUTES.append((method, segs, key, auth, fn.__name__))
        return fn

    return deco


def _match(pattern: tuple[str, ...], segs: list[str]) -> list[str] | None:
    args: list[str] = []
    for i, p in enumerate(pattern):
        if p == "**":
            if i >= len(segs):
                return None
            args.append("/".join(segs[i:]))
            return args
        if i >= len(segs):
            return None
        if p == "*":
            args.append(segs[i])
        elif p != segs[i]:
            return None
    return args if len(segs) == len(pattern) else None


def _version_tuple(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", v))


_VERB = {"POST": "create", "PUT": "update", "DELETE": "delete"}
_SCALARS = (str, int, float, bool, type(None))


class Cluster:
    def __init__(
        self,
        data_dir: Path,
        *,
        backend: Backend,
        username: str,
        password: str,
        capacity_bytes: int,
        api_versions: Iterable[str],
        sw_version: str,
        session_ttl: float,
        available_delay: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.data_dir = data_dir
        self.backend = backend
        self.username = username
        self._password = password
        self.capacity_bytes = capacity_bytes
        self.api_versions = tuple(api_versions)
        self.sw_version = sw_version
        self.session_ttl = session_ttl
        self.available_delay = available_delay
        self.clock = clock
        self.lock = threading.RLock()
        self.store = Store()
        self.sessions: dict[str, float] = {}  # key -> expiry (clock)
        self.system_uuid = str(uuidlib.uuid4())
        self.state_file = data_dir / "state.json"
        self._snapshot = b""
        self._seq = 0  # snapshots taken
        self._written = 0  # snapshots on disk
        self._write_lock = threading.Lock()
        self.volume_dir = data_dir / "volumes"

    # ---- lifecycle -------------------------------------------------------------------

    def load(self) -> None:
        """Read the state file (if any), clean stale devices, re-attach online volumes."""
        import json

        with self.lock:
            if self.state_file.exists():
                self.store = Store.from_json(json.loads(self.state_file.read_text()))
            for ai in self.store.app_instances.values():
                for vol in self._volumes(ai):
                    self.backend.cleanup(Path(vol.file))
                    vol.device_path = None
            try:
                for ai in self.store.app_instances.values():
                    if ai.admin_state == "online":
                        self._attach(ai)
            except BackendError:
                self.detach_all()  # start() fails: leave no device behind
                raise
            self.save()
        self.flush()

    def save(self) -> None:
        """Snapshot the state (under the lock); ``flush()`` writes it to disk."""
        self._snapshot = dump_json(self.store.to_json())
        self._seq += 1

    def flush(self) -> None:
        """Persist every change made so far, before answering the request that made it.

        Called outside the state lock: an fsync costs up to ~100 ms on a busy disk, so
        concurrent requests share one write of the newest snapshot (group commit).
        """
        with self.lock:
            target = self._seq
        if self._written >= target:  # nothing new (reads do not wait for others' writes)
            return
        with self._write_lock:
            if self._written >= target:
                return
            with self.lock:
                seq, data = self._seq, self._snapshot
            self.data_dir.mkdir(parents=True, exist_ok=True)
            write_json_atomic(self.state_file, data)
            self._written = seq

    def detach_all(self) -> None:
        """Detach every device (stop); the state keeps admin states for the next start."""
        with self.lock:
            errors = []
            for ai in self.store.app_instances.values():
                try:
                    self._detach(ai)
                except BackendError as exc:
                    errors.append(str(exc))
            if errors:
                raise BackendError("; ".join(errors))

    def devices(self) -> list[str]:
        with self.lock:
            return [
                vol.device_path
                for ai in self.store.app_instances.values()
                for vol in self._volumes(ai)
                if vol.device_path and self.backend.name == "loop"
            ]

    # ---- simulator-only controls -----------------------------------------------------

    def expire_sessions(self) -> None:
        with self.lock:
            self.sessions.clear()

    def set_capacity(self, nbytes: int) -> None:
        with self.lock:
            self.capacity_bytes = int(nbytes)

    def used_bytes(self) -> int:
        return sum(
            v.size_bytes for ai in self.store.app_instances.values() for v in self._volumes(ai)
        )

    def sim_state(self) -> dict[str, Any]:
        with self.lock:
            ais = []
            for ai in self.store.app_instances.values():
                si = ai.storage_instances[0] if ai.storage_instances else None
                vol = si.volumes[0] if si and si.volumes else None
                ais.append(
                    {
                        "tenant": ai.tenant,
                        "id": ai.id,
                        "name": ai.name,
                        "uuid": ai.uuid,
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
                )
            used = self.used_bytes()
            now = self.clock()
            return {
                "app_instances": ais,
                "loop_devices": self.devices(),
                "initiators": [
                    {"tenant": i.tenant, "id": i.id, "name": i.name}
                    for i in self.store.initiators.values()
                ],
                "tenants": sorted(self.store.tenants),
                "capacity": {
                    "total": self.capacity_bytes,
                    "used": used,
                    "available": max(0, self.capacity_bytes - used),
                },
                "sessions": sum(1 for exp in self.sessions.values() if exp > now),
            }

    # ---- request dispatch ------------------------------------------------------------

    def handle(self, req: Request) -> Response:
        segs = req.segments
        candidates = [(r, _match(r[1], segs)) for r in _ROUTES]
        matching = [(r, a) for r, a in candidates if a is not None]
        if not matching:
            raise ApiError(404, f"No route for {req.path}", name="InvalidRouteError")
        chosen = [(r, a) for r, a in matching if r[0] == req.method]
        if not chosen:
            raise ApiError(
                405, f"Method {req.method} not allowed on {req.path}", name="InvalidRouteError"
            )
        (method, _pattern, key, auth, fn_name), args = chosen[0]
        with self.lock:
            if auth:
                self._check_session(req)
                self._check_tenant(req)
            if key is not None and method in _VERB:
                self._validate(req, key, _VERB[method])
            handler: Handler = getattr(type(self), fn_name)
            result = handler(self, req, args or [])
        self.flush()
        if isinstance(result, Response):
            return result
        return Response(200, self._envelope(req, result))

    def _envelope(self, req: Request, data: Any, metadata: dict[str, Any] | None = None) -> Any:
        if isinstance(data, _Listing):
            data, metadata = data.items, data.metadata
        return {
            "tenant": req.tenant,
            "path": req.path,
            "version": f"v{req.version}",
            "data": data,
            "metadata": metadata or {},
            "request_time": int(time.time() * 1000),
        }

    def _check_session(self, req: Request) -> None:
        key = req.headers.get("Auth-Token") or ""
        expiry = self.sessions.get(key)
        now = self.clock()
        if not key or expiry is None or expiry <= now:
            self.sessions.pop(key, None)
            raise ApiError(401, INVALID_SESSION, name="InvalidSessionKeyError")
        # Idle timeout: every use of a key extends its life.
        self.sessions[key] = now + self.session_ttl

    def _check_tenant(self, req: Request) -> None:
        tenant = req.headers.get("tenant") or "/root"
        if tenant not in self.store.tenants:
            raise ApiError(404, f"Tenant {tenant} does not exist")
        req.tenant = tenant

    def _validate(self, req: Request, key: str, verb: str) -> None:
        body = {} if req.body is None else req.body
        if not isinstance(body, dict):
            raise ApiError(
                422, "Request body must be a JSON object", errors=["body: not an object"]
            )
        req.body = body
        errors = schema.validate(req.version, key, verb, body)
        if errors:
            raise ApiError(422, f"Validation failed: {errors[0]}", errors=errors)

    # ---- helpers ---------------------------------------------------------------------

    @staticmethod
    def _volumes(ai: AppInstance) -> list[Volume]:
        return [v for si in ai.storage_instances for v in si.volumes]

    def _ai(self, req: Request, ident: str) -> AppInstance:
        ai = self.store.app_instances.get(ident)
        if ai is not None and ai.tenant == req.tenant:
            return ai
        for ai in self.store.app_instances.values():
            if ai.name == ident and ai.tenant == req.tenant:
                return ai
        raise ApiError(404, f"App instance {ident} does not exist")

    def _si(self, req: Request, ai_ident: str, si_name: str) -> tuple[AppInstance, StorageInstance]:
        ai = self._ai(req, ai_ident)
        for si in ai.storage_instances:
            if si.name == si_name:
                return ai, si
        raise ApiError(404, f"Storage instance {si_name} does not exist in {ai.name}")

    def _vol(self, req: Request, args: list[str]) -> tuple[AppInstance, StorageInstance, Volume]:
        ai, si = self._si(req, args[0], args[1])
        for vol in si.volumes:
            if vol.name == args[2]:
                return ai, si, vol
        raise ApiError(404, f"Volume {args[2]} does not exist in {ai.name}/{si.name}")

    def _available(self) -> int:
        return self.capacity_bytes - self.used_bytes()

    def _need_capacity(self, nbytes: int) -> None:
        available = self._available()
        if nbytes > available:
            raise ApiError(
                422,
                f"Insufficient capacity: {nbytes} bytes requested, {max(0, available)} available",
                name="InsufficientCapacityError",
            )

    def _attach(self, ai: AppInstance) -> None:
        attached: list[Volume] = []
        try:
            for vol in self._volumes(ai):
                if vol.device_path is None:
                    vol.device_path = self.backend.attach(Path(vol.file))
                    attached.append(vol)
        except BackendError:
            for vol in attached:
                self._detach_volume(vol)
            raise
        ai.online_since = self.clock()

    def _detach_volume(self, vol: Volume) -> None:
        if vol.device_path is not None:
            self.backend.detach(vol.device_path, Path(vol.file))
            vol.device_path = None

    def _detach(self, ai: AppInstance) -> None:
        for vol in self._volumes(ai):
            self._detach_volume(vol)

    def _set_admin_state(self, ai: AppInstance, state: str) -> None:
        if state == ai.admin_state:
            return
        try:
            if state == "online":
                self._attach(ai)
            else:
                self._detach(ai)
        except BackendError as exc:
            raise ApiError(500, f"Could not set {ai.name} {state}: {exc}") from exc
        ai.admin_state = state

    def _visible_initiator(self, tenant: str, iqn: str) -> Initiator | None:
        """The initiator as seen from ``tenant``: its own, else the nearest parent's."""
        t = tenant
        while True:
            init = self.store.initiators.get((t, iqn))
            if init is not None:
                return init
            if t == "/root":
                return None
            t = t.rsplit("/", 1)[0] or "/root"

    def _check_initiator_paths(self, req: Request, paths: list[str]) -> None:
        for p in paths:
            m = re.fullmatch(r"/initiators/(.+)", p)
            if not m or self._visible_initiator(req.tenant, m.group(1)) is None:
                raise ApiError(404, f"Initiator {p} does not exist")

    # ---- rendering -------------------------------------------------------------------

    def _render_volume(self, ai: AppInstance, si: StorageInstance, vol: Volume) -> dict[str, Any]:
        path = f"/app_instances/{ai.id}/storage_instances/{si.name}/volumes/{vol.name}"
        try:
            in_use = Path(vol.file).stat().st_blocks * 512 / GiB
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
            "snapshots": [],
            "op_state": "available",
            "active_storage_nodes": [{"path": STORAGE_NODE}],
            "health": "ok",
            "deployment_state": "deployed",
        }
        if _version_tuple(self.sw_version) >= (3, 3):
            out["placement_policy"] = {"path": f"/placement_policies/{vol.placement_mode}"}
        if vol.device_path is not None:
            out["device_path"] = vol.device_path
        return out

    def _render_acl(self, ai: AppInstance, si: StorageInstance) -> dict[str, Any]:
        return {
            "path": f"/app_instances/{ai.id}/storage_instances/{si.name}/acl_policy",
            "initiators": [{"path": p} for p in si.acl_initiators],
            "initiator_groups": [{"path": p} for p in si.acl_initiator_groups],
        }

    def _render_auth(self, ai: AppInstance, si: StorageInstance) -> dict[str, Any]:
        return {
            "path": f"/app_instances/{ai.id}/storage_instances/{si.name}/auth",
            "type": si.auth.get("type", "none"),
            "initiator_user_name": si.auth.get("initiator_user_name", ""),
            "initiator_pswd": HIDDEN,
            "target_user_name": si.auth.get("target_user_name", ""),
            "target_pswd": HIDDEN,
        }

    def _render_si(self, ai: AppInstance, si: StorageInstance) -> dict[str, Any]:
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
            "volumes": [self._render_volume(ai, si, v) for v in si.volumes],
            "access_control_mode": si.access_control_mode,
            "acl_policy": self._render_acl(ai, si),
            "ip_pool": {
                "path": si.ip_pool,
                "resolved_path": si.ip_pool,
                "resolved_tenant": "/root",
            },
            "access": access,
            "auth": self._render_auth(ai, si),
            "active_initiators": [],
            "active_storage_nodes": [{"path": STORAGE_NODE}],
        }

    def _render_ai(self, ai: AppInstance) -> dict[str, Any]:
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
            "storage_instances": [self._render_si(ai, si) for si in ai.storage_instances],
            "snapshots": [],
            "snapshot_policies": [],
            "deployment_state": "deployed",
        }

    def _render_initiator(self, init: Initiator) -> dict[str, Any]:
        return {
            "path": f"/initiators/{init.id}",
            "id": init.id,
            "name": init.name,
            "tenant": init.tenant,
        }

    def _render_tenant(self, t: Tenant) -> dict[str, Any]:
        parent = t.path.rsplit("/", 1)[0]
        return {
            "path": "/tenants" + t.path,
            "name": t.path.rsplit("/", 1)[1],
            "descr": t.descr,
            "parent_path": parent,
            "subtenants": [
                "/tenants" + p
                for p in sorted(self.store.tenants)
                if p.rsplit("/", 1)[0] == t.path and p != t.path
            ],
        }

    # ---- listing: filter, sort, paging -----------------------------------------------

    def _listing(self, req: Request, items: list[dict[str, Any]]) -> _Listing:
        flt = req.query.get("filter")
        if flt:
            items = [i for i in items if _filter(flt)(i)]
        sort = req.query.get("sort")
        if sort:
            desc = sort.startswith("-")
            attr = sort.lstrip("-")
            items = sorted(items, key=lambda i: str(i.get(attr, "")), reverse=desc)
        total = len(items)
        limit = _int_param(req.query, "limit", DEFAULT_LIMIT, 0, MAX_LIMIT)
        if req.version == "2.1":
            return _Listing(items[:limit] if "limit" in req.query else items, {"total": total})
        offset = _int_param(req.query, "offset", 0, 0, None)
        page = items[offset : offset + limit]
        return _Listing(
            page,
            {"total_count": total, "request_count": len(page), "offset": offset, "limit": limit},
        )

    # ---- session ---------------------------------------------------------------------

    @route("PUT", "/login", schema.LOGIN, auth=False)
    def login(self, req: Request, args: list[str]) -> Response:
        body = req.body
        ok_name = secrets.compare_digest(str(body["name"]), self.username)
        ok_pw = secrets.compare_digest(str(body["password"]), self._password)
        if not (ok_name and ok_pw):
            raise ApiError(401, "Invalid credentials", name="AuthFailedError")
        now = self.clock()
        for old in [k for k, exp in self.sessions.items() if exp <= now]:
            del self.sessions[old]
        key = secrets.token_hex(16)
        self.sessions[key] = now + self.session_ttl
        body_out = {"key": key, "version": f"v{req.version}", "request_time": int(time.time())}
        return Response(200, body_out)

    @route("PUT", "/logout")
    def logout(self, req: Request, args: list[str]) -> Any:
        self.sessions.pop(req.headers.get("Auth-Token") or "", None)
        return {}

    # ---- system, api -----------------------------------------------------------------

    @route("GET", "/api", auth=False)
    def api(self, req: Request, args: list[str]) -> Response:
        return Response(200, schema.api_doc(req.version))

    @route("GET", "/system")
    def system(self, req: Request, args: list[str]) -> Any:
        used = self.used_bytes()
        available = max(0, self.capacity_bytes - used)
        return {
            "path": "/system",
            "name": "edf-simulator",
            "uuid": self.system_uuid,
            "sw_version": self.sw_version,
            "build_version": f"{self.sw_version}-sim",
            "op_state": "running",
            "health": "ok",
            "total_capacity": self.capacity_bytes,
            "available_capacity": available,
            "total_provisioned_capacity": used,
            "hybrid_total_capacity": self.capacity_bytes,
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

    # ---- tenants ---------------------------------------------------------------------

    def _visible_tenants(self, req: Request) -> list[Tenant]:
        return [
            t
            for p, t in sorted(self.store.tenants.items())
            if p == req.tenant or p.startswith(req.tenant + "/")
        ]

    @route("GET", "/tenants")
    def list_tenants(self, req: Request, args: list[str]) -> Any:
        return self._listing(req, [self._render_tenant(t) for t in self._visible_tenants(req)])

    @route("POST", "/tenants", schema.TENANTS)
    def create_tenant(self, req: Request, args: list[str]) -> Any:
        parent = req.body.get("parent_path", "/root")
        parent = "/" + parent.strip("/")
        if parent not in self.store.tenants:
            raise ApiError(404, f"Parent tenant {parent} does not exist")
        path = f"{parent}/{req.body['name']}"
        if path in self.store.tenants:
            raise ApiError(409, f"Tenant {path} already exists")
        tenant = Tenant(path, req.body.get("descr") or "")
        self.store.tenants[path] = tenant
        self.save()
        return self._render_tenant(tenant)

    def _tenant(self, req: Request, rest: str) -> Tenant:
        path = "/" + rest.strip("/")
        t = self.store.tenants.get(path)
        if t is None or t not in self._visible_tenants(req):
            raise ApiError(404, f"Tenant {path} does not exist")
        return t

    @route("GET", "/tenants/**")
    def get_tenant(self, req: Request, args: list[str]) -> Any:
        return self._render_tenant(self._tenant(req, args[0]))

    @route("DELETE", "/tenants/**")
    def delete_tenant(self, req: Request, args: list[str]) -> Any:
        t = self._tenant(req, args[0])
        if t.path == "/root":
            raise ApiError(400, "The root tenant cannot be deleted")
        used = (
            any(p.startswith(t.path + "/") for p in self.store.tenants)
            or any(a.tenant == t.path for a in self.store.app_instances.values())
            or any(i.tenant == t.path for i in self.store.initiators.values())
        )
        if used:
            raise ApiError(409, f"Tenant {t.path} is not empty")
        del self.store.tenants[t.path]
        self.save()
        return self._render_tenant(t)

    # ---- initiators ------------------------------------------------------------------

    @route("GET", "/initiators")
    def list_initiators(self, req: Request, args: list[str]) -> Any:
        items = [
            self._render_initiator(i)
            for i in self.store.initiators.values()
            if i.tenant == req.tenant
        ]
        return self._listing(req, items)

    @route("POST", "/initiators", schema.INITIATORS)
    def create_initiator(self, req: Request, args: list[str]) -> Any:
        iqn = req.body["id"]
        if (req.tenant, iqn) in self.store.initiators:
            raise ApiError(409, f"Initiator {iqn} already exists in tenant {req.tenant}")
        inherited = self._visible_initiator(req.tenant, iqn)
        # v2.2 (DAT-15931): the first copy of a parent tenant's initiator needs force.
        if req.version != "2.1" and inherited is not None and not req.body.get("force"):
            raise ApiError(
                400,
                f"Initiator {iqn} already exists in tenant {inherited.tenant}. Creating it in "
                f"tenant {req.tenant} hides it there; set force to true to override this warning.",
            )
        init = Initiator(iqn, req.body["name"], req.tenant)
        self.store.initiators[(req.tenant, iqn)] = init
        self.save()
        return self._render_initiator(init)

    @route("GET", "/initiators/*")
    def get_initiator(self, req: Request, args: list[str]) -> Any:
        init = self._visible_initiator(req.tenant, args[0])
        if init is None:
            raise ApiError(404, f"Initiator {args[0]} does not exist")
        return self._render_initiator(init)

    @route("PUT", "/initiators/*", schema.INITIATOR_ONE)
    def update_initiator(self, req: Request, args: list[str]) -> Any:
        init = self.store.initiators.get((req.tenant, args[0]))
        if init is None:
            raise ApiError(404, f"Initiator {args[0]} does not exist in tenant {req.tenant}")
        if "name" in req.body:
            init.name = req.body["name"]
            self.save()
        return self._render_initiator(init)

    @route("DELETE", "/initiators/*", schema.INITIATOR_ONE)
    def delete_initiator(self, req: Request, args: list[str]) -> Any:
        init = self.store.initiators.get((req.tenant, args[0]))
        if init is None:
            raise ApiError(404, f"Initiator {args[0]} does not exist in tenant {req.tenant}")
        path = f"/initiators/{init.id}"
        for ai in self.store.app_instances.values():
            if ai.tenant == req.tenant and any(
                path in si.acl_initiators for si in ai.storage_instances
            ):
                raise ApiError(409, f"Initiator {init.id} is in the ACL of {ai.name}")
        del self.store.initiators[(req.tenant, init.id)]
        self.save()
        return self._render_initiator(init)

    # ---- app instances ---------------------------------------------------------------

    @route("GET", "/app_instances")
    def list_app_instances(self, req: Request, args: list[str]) -> Any:
        items = [
            self._render_ai(ai)
            for ai in self.store.app_instances.values()
            if ai.tenant == req.tenant
        ]
        return self._listing(req, items)

    @route("POST", "/app_instances", schema.AI)
    def create_app_instance(self, req: Request, args: list[str]) -> Any:
        body = req.body
        for unsupported in ("clone_src", "clone_volume_src", "clone_snapshot_src", "app_template"):
            if unsupported in body:
                raise ApiError(400, f"{unsupported} is not supported by the EDF simulator")
        if body.get("snapshot_policies"):
            raise ApiError(400, "snapshot_policies are not supported by the EDF simulator")
        name = body["name"]
        if any(
            a.name == name and a.tenant == req.tenant for a in self.store.app_instances.values()
        ):
            raise ApiError(409, f"App instance {name} already exists in tenant {req.tenant}")
        ai_id = str(uuidlib.uuid4())
        admin_state = "online"
        sis: list[StorageInstance] = []
        for s in body.get("storage_instances", []):
            if "name" not in s:
                raise ApiError(
                    422,
                    "Validation failed: storage_instances: name is required",
                    errors=["storage_instances: 'name' is a required property"],
                )
            if any(x.name == s["name"] for x in sis):
                raise ApiError(409, f"Storage instance {s['name']} given twice")
            if s.get("admin_state") == "offline":
                admin_state = "offline"
            acl = s.get("acl_policy", {})
            paths = [i["path"] for i in acl.get("initiators", [])]
            self._check_initiator_paths(req, paths)
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
                        file=str(self.volume_dir / f"{vol_uuid}.img"),
                    )
                )
            si = StorageInstance(
                name=s["name"],
                uuid=str(uuidlib.uuid4()),
                iqn=f"iqn.2013-05.com.daterainc:tc:01:sn:{secrets.token_hex(8)}",
                ips=["127.0.0.1"],
                volumes=vols,
                acl_initiators=paths,
                access_control_mode=s.get("access_control_mode", "deny_all"),
                ip_pool=s.get("ip_pool", {}).get("path", "/access_network_ip_pools/default"),
            )
            if "auth" in s:
                self._apply_auth(si, s["auth"])
            sis.append(si)
        ai = AppInstance(
            id=ai_id,
            name=name,
            uuid=body.get("uuid", "00000000-0000-0000-0000-000000000000"),
            tenant=req.tenant,
            descr=body.get("descr") or "",
            create_mode=body.get("create_mode", "normal"),
            admin_state="offline",
            storage_instances=sis,
        )
        self._need_capacity(sum(v.size_bytes for v in self._volumes(ai)))
        created: list[Path] = []
        try:
            for vol in self._volumes(ai):
                create_volume_file(Path(vol.file), vol.size_bytes)
                created.append(Path(vol.file))
            self.store.app_instances[ai.id] = ai
            self._set_admin_state(ai, admin_state)
        except (OSError, ApiError):
            self.store.app_instances.pop(ai.id, None)
            for f in created:
                f.unlink(missing_ok=True)
            raise
        self.save()
        return self._render_ai(ai)

    @route("GET", "/app_instances/*")
    def get_app_instance(self, req: Request, args: list[str]) -> Any:
        return self._render_ai(self._ai(req, args[0]))

    @route("PUT", "/app_instances/*", schema.AI_ONE)
    def update_app_instance(self, req: Request, args: list[str]) -> Any:
        ai = self._ai(req, args[0])
        body = req.body
        for unsupported in ("storage_instances", "snapshot_policies", "restore_point"):
            if unsupported in body:
                raise ApiError(400, f"{unsupported} updates are not supported by the EDF simulator")
        new_name = body.get("name")
        if new_name and new_name != ai.name:
            if any(
                a.name == new_name and a.tenant == ai.tenant
                for a in self.store.app_instances.values()
            ):
                raise ApiError(409, f"App instance {new_name} already exists")
            ai.name = new_name
        if "descr" in body:
            ai.descr = body["descr"] or ""
        if "admin_state" in body:
            self._set_admin_state(ai, body["admin_state"])
        self.save()
        return self._render_ai(ai)

    @route("DELETE", "/app_instances/*", schema.AI_ONE)
    def delete_app_instance(self, req: Request, args: list[str]) -> Any:
        ai = self._ai(req, args[0])
        if ai.admin_state == "online" and not req.body.get("force"):
            raise ApiError(
                400,
                f"App instance {ai.name} is online: set admin_state offline before deleting it, "
                "or delete with force",
            )
        rendered = self._render_ai(ai)
        try:
            self._detach(ai)
        except BackendError as exc:
            raise ApiError(500, f"Could not detach {ai.name}: {exc}") from exc
        for vol in self._volumes(ai):
            Path(vol.file).unlink(missing_ok=True)
        del self.store.app_instances[ai.id]
        self.save()
        return rendered

    # ---- metadata --------------------------------------------------------------------

    def _merge_metadata(self, ai: AppInstance, data: Any) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise ApiError(
                422,
                "Validation failed: metadata must be an object",
                errors=["body: must be an object"],
            )
        bad = [k for k, v in data.items() if not isinstance(v, _SCALARS)]
        if bad:
            raise ApiError(
                422,
                f"Validation failed: metadata values must be scalars ({', '.join(bad)})",
                errors=[f"{k}: must be a string, number, boolean or null" for k in bad],
            )
        ai.metadata.update(data)
        self.save()
        return dict(ai.metadata)

    @route("GET", "/app_instances/*/metadata")
    def get_metadata(self, req: Request, args: list[str]) -> Any:
        return dict(self._ai(req, args[0]).metadata)

    @route("PUT", "/app_instances/*/metadata")
    def put_metadata(self, req: Request, args: list[str]) -> Any:
        return self._merge_metadata(self._ai(req, args[0]), req.body)

    def _check_ecosystem(self, req: Request) -> None:
        if _version_tuple(self.sw_version) < (3, 3):
            raise ApiError(404, f"No route for {req.path}", name="InvalidRouteError")

    @route("GET", "/app_instances/*/int_ecosystem_data")
    def get_ecosystem(self, req: Request, args: list[str]) -> Any:
        self._check_ecosystem(req)
        return dict(self._ai(req, args[0]).metadata)

    @route("PUT", "/app_instances/*/int_ecosystem_data")
    def put_ecosystem(self, req: Request, args: list[str]) -> Any:
        self._check_ecosystem(req)
        ai = self._ai(req, args[0])
        body = req.body
        if not isinstance(body, dict) or set(body) != {"data"}:
            raise ApiError(
                422,
                'Validation failed: body must be {"data": {...}}',
                errors=["body: exactly one property 'data' is allowed"],
            )
        return self._merge_metadata(ai, body["data"])

    # ---- storage instances -----------------------------------------------------------

    @route("GET", "/app_instances/*/storage_instances")
    def list_sis(self, req: Request, args: list[str]) -> Any:
        ai = self._ai(req, args[0])
        return self._listing(req, [self._render_si(ai, si) for si in ai.storage_instances])

    @route("GET", "/app_instances/*/storage_instances/*")
    def get_si(self, req: Request, args: list[str]) -> Any:
        return self._render_si(*self._si(req, args[0], args[1]))

    @route("PUT", "/app_instances/*/storage_instances/*", schema.SI)
    def update_si(self, req: Request, args: list[str]) -> Any:
        ai, si = self._si(req, args[0], args[1])
        body = req.body
        if "volumes" in body:
            raise ApiError(400, "volumes updates are not supported by the EDF simulator")
        if "admin_state" in body and body["admin_state"] != ai.admin_state:
            raise ApiError(
                400, "The EDF simulator models admin_state per app instance: set it there"
            )
        if "acl_policy" in body:
            self._apply_acl(req, si, body["acl_policy"])
        if "auth" in body:
            self._apply_auth(si, body["auth"])
        if "access_control_mode" in body:
            si.access_control_mode = body["access_control_mode"]
        if "ip_pool" in body:
            si.ip_pool = body["ip_pool"]["path"]
        self.save()
        return self._render_si(ai, si)

    def _apply_acl(self, req: Request, si: StorageInstance, acl: dict[str, Any]) -> None:
        if acl.get("initiator_groups"):
            raise ApiError(404, "Initiator groups are not modelled by the EDF simulator")
        if "initiators" in acl:
            paths = [i["path"] for i in acl["initiators"]]
            self._check_initiator_paths(req, paths)
            si.acl_initiators = list(dict.fromkeys(paths))
        if "initiator_groups" in acl:
            si.acl_initiator_groups = []

    def _apply_auth(self, si: StorageInstance, auth: dict[str, Any]) -> None:
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
    def get_acl(self, req: Request, args: list[str]) -> Any:
        return self._render_acl(*self._si(req, args[0], args[1]))

    @route("PUT", "/app_instances/*/storage_instances/*/acl_policy", schema.ACL)
    def put_acl(self, req: Request, args: list[str]) -> Any:
        ai, si = self._si(req, args[0], args[1])
        self._apply_acl(req, si, req.body)
        self.save()
        return self._render_acl(ai, si)

    @route(
        "PUT", "/app_instances/*/storage_instances/*/acl_policy/initiators", schema.ACL_INITIATORS
    )
    def put_acl_member(self, req: Request, args: list[str]) -> Any:
        ai, si = self._si(req, args[0], args[1])
        path = req.body["path"]
        if req.body["op"] == "add":
            self._check_initiator_paths(req, [path])
            if path in si.acl_initiators:
                raise ApiError(409, f"{path} is already in the ACL")
            si.acl_initiators.append(path)
        else:
            if path not in si.acl_initiators:
                raise ApiError(404, f"{path} is not in the ACL")
            si.acl_initiators.remove(path)
        self.save()
        return self._render_acl(ai, si)

    @route("GET", "/app_instances/*/storage_instances/*/auth")
    def get_auth(self, req: Request, args: list[str]) -> Any:
        return self._render_auth(*self._si(req, args[0], args[1]))

    @route("PUT", "/app_instances/*/storage_instances/*/auth", schema.AUTH)
    def put_auth(self, req: Request, args: list[str]) -> Any:
        ai, si = self._si(req, args[0], args[1])
        self._apply_auth(si, req.body)
        self.save()
        return self._render_auth(ai, si)

    # ---- volumes ---------------------------------------------------------------------

    @route("GET", "/app_instances/*/storage_instances/*/volumes")
    def list_volumes(self, req: Request, args: list[str]) -> Any:
        ai, si = self._si(req, args[0], args[1])
        return self._listing(req, [self._render_volume(ai, si, v) for v in si.volumes])

    @route("GET", "/app_instances/*/storage_instances/*/volumes/*")
    def get_volume(self, req: Request, args: list[str]) -> Any:
        return self._render_volume(*self._vol(req, args))

    @route("PUT", "/app_instances/*/storage_instances/*/volumes/*", schema.VOLUME)
    def update_volume(self, req: Request, args: list[str]) -> Any:
        ai, si, vol = self._vol(req, args)
        body = req.body
        if "restore_point" in body:
            raise ApiError(400, "restore_point is not supported by the EDF simulator")
        if "size" in body and body["size"] != vol.size:
            new_size = body["size"]
            if ai.admin_state == "online":
                # Like the upstream drivers (DAT-20105): resize only while offline.
                raise ApiError(
                    400,
                    f"Volume {vol.name} of {ai.name} cannot be resized while the app instance "
                    "is online: set admin_state offline first",
                )
            if new_size < vol.size:
                raise ApiError(400, f"Volume {vol.name} cannot shrink ({vol.size} -> {new_size})")
            new_bytes = int(new_size * GiB)
            self._need_capacity(new_bytes - vol.size_bytes)
            try:
                grow_volume_file(Path(vol.file), new_bytes)
            except OSError as exc:
                raise ApiError(500, f"Could not grow {vol.name}: {exc}") from exc
            vol.size = new_size
        if "replica_count" in body:
            vol.replica_count = body["replica_count"]
        if "placement_mode" in body:
            vol.placement_mode = body["placement_mode"]
        self.save()
        return self._render_volume(ai, si, vol)


@dataclass
class _Listing:
    items: list[dict[str, Any]]
    metadata: dict[str, Any]


def _int_param(query: Mapping[str, str], name: str, default: int, lo: int, hi: int | None) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(
            422, f"Validation failed: {name} must be an integer", errors=[f"{name}: not an integer"]
        ) from None
    if value < lo or (hi is not None and value > hi):
        raise ApiError(
            422,
            f"Validation failed: {name} out of range",
            errors=[f"{name}: must be between {lo} and {hi}"],
        )
    return value


def _filter(expr: str) -> Callable[[dict[str, Any]], bool]:
    """A tiny subset of Resource Query Language: ``match(attr,REGEX)`` and ``attr=value``."""
    m = re.fullmatch(r"match\((\w+),(.*)\)", expr)
    if m:
        attr = m.group(1)
        try:
            rx = re.compile(m.group(2))
        except re.error as exc:
            raise ApiError(400, f"Bad regular expression in filter: {exc}") from None
        return lambda item: rx.search(str(item.get(attr, ""))) is not None
    m = re.fullmatch(r"(\w+)=(.*)", expr)
    if m:
        attr, value = m.group(1), m.group(2)
        return lambda item: str(item.get(attr, "")) == value
    raise ApiError(400, f"Unsupported filter {expr!r}: use match(attr,REGEX) or attr=value")
