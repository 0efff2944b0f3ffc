"""The simulator's stored objects (``State``), their indexes and their JSON form; no I/O here.

Lookups by id, by (tenant, name) and the provisioned total are indexed so that a request costs
the same with 10 or 10,000 app instances; listings still scan the tenant (see ``listing``).
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from oslo_utils import units

STATE_FORMAT = 1


def new_iqn() -> str:
    """A storage instance's target IQN, in the form EDF gives them."""
    return f"iqn.2013-05.com.daterainc:tc:01:sn:{secrets.token_hex(8)}"


@dataclass
class Snapshot:
    """A volume's bytes at one moment, kept in their own file (a reflink or a copy)."""

    uuid: str
    utc_ts: str  # "{sec}.{nsec}": the collection key, as Datera's drivers parse it
    size: float  # GiB: the volume's size when it was taken
    file: str


@dataclass
class Volume:
    name: str
    uuid: str
    size: float  # GiB, like the API (a JSON number: fractions are allowed)
    replica_count: int
    placement_mode: str
    file: str
    snapshots: list[Snapshot] = field(default_factory=list)  # oldest first
    # Runtime only: the attached device while the app instance is online.
    device_path: str | None = None

    @property
    def size_bytes(self) -> int:
        return int(self.size * units.Gi)


@dataclass
class StorageInstance:
    name: str
    uuid: str
    iqn: str
    ips: list[str]
    volumes: list[Volume]
    acl_initiators: list[str] = field(default_factory=list)
    acl_initiator_groups: list[str] = field(default_factory=list)
    access_control_mode: str = "deny_all"
    ip_pool: str = "/access_network_ip_pools/default"
    # type, initiator_user_name, initiator_pswd, target_user_name, target_pswd. Kept like the
    # cluster keeps them (the state file is 0600); the API only ever shows "(hidden)".
    auth: dict[str, str] = field(default_factory=lambda: {"type": "none"})


@dataclass
class AppInstance:
    id: str
    name: str
    uuid: str
    tenant: str
    descr: str
    create_mode: str
    admin_state: str
    storage_instances: list[StorageInstance]
    metadata: dict[str, Any] = field(default_factory=dict)
    online_since: float = 0.0  # clock() when last set online (runtime only)

    @property
    def volumes(self) -> list[Volume]:
        return [v for si in self.storage_instances for v in si.volumes]


@dataclass
class Initiator:
    id: str
    name: str
    tenant: str


@dataclass
class Tenant:
    path: str
    descr: str = ""


#: Stored objects, by the name of their collection in the state file and the journal.
Stored = Tenant | AppInstance | Initiator


def collection_of(obj: Stored) -> tuple[str, Any]:
    """(collection, key) of a stored object: how the journal names it."""
    if isinstance(obj, AppInstance):
        return "app_instances", obj.id
    if isinstance(obj, Initiator):
        return "initiators", [obj.tenant, obj.id]
    return "tenants", obj.path


def to_json(obj: Stored) -> dict[str, Any]:
    """The persisted form: everything but the runtime-only fields."""
    d = dataclasses.asdict(obj)
    if isinstance(obj, AppInstance):
        d.pop("online_since")
        for si in d["storage_instances"]:
            for vol in si["volumes"]:
                vol.pop("device_path")
    return d


def app_instance_from_json(obj: dict[str, Any]) -> AppInstance:
    a = dict(obj)
    sis = []
    for s in a.pop("storage_instances"):
        s = dict(s)
        vols = []
        for v in s.pop("volumes"):
            v = dict(v)
            snaps = [Snapshot(**snap) for snap in v.pop("snapshots", [])]
            vols.append(Volume(snapshots=snaps, **v))
        sis.append(StorageInstance(volumes=vols, **s))
    return AppInstance(storage_instances=sis, **a)


class State:
    """Everything that survives a restart (sessions and faults do not).

    Read the dicts freely; change app instances only through the methods, which keep the
    indexes (by tenant, by name) and the provisioned total right.
    """

    def __init__(self) -> None:
        self.tenants: dict[str, Tenant] = {"/root": Tenant("/root")}
        self.app_instances: dict[str, AppInstance] = {}
        # (tenant, iqn) -> Initiator: on v2.2 the same IQN may exist once per tenant.
        self.initiators: dict[tuple[str, str], Initiator] = {}
        self._by_tenant: dict[str, dict[str, AppInstance]] = {}  # tenant -> id -> ai
        self._by_name: dict[tuple[str, str], AppInstance] = {}
        self._provisioned = 0  # bytes of every volume

    # ---- app instances ---------------------------------------------------------------

    def add_app_instance(self, ai: AppInstance) -> None:
        self.app_instances[ai.id] = ai
        self._by_tenant.setdefault(ai.tenant, {})[ai.id] = ai
        self._by_name[(ai.tenant, ai.name)] = ai
        self._provisioned += sum(v.size_bytes for v in ai.volumes)

    def remove_app_instance(self, ai: AppInstance) -> None:
        del self.app_instances[ai.id]
        del self._by_tenant[ai.tenant][ai.id]
        del self._by_name[(ai.tenant, ai.name)]
        self._provisioned -= sum(v.size_bytes for v in ai.volumes)

    def rename_app_instance(self, ai: AppInstance, name: str) -> None:
        del self._by_name[(ai.tenant, ai.name)]
        ai.name = name
        self._by_name[(ai.tenant, name)] = ai

    def resize_volume(self, vol: Volume, size: float) -> None:
        before = vol.size_bytes
        vol.size = size
        self._provisioned += vol.size_bytes - before

    def app_instance(self, tenant: str, ident: str) -> AppInstance | None:
        """The app instance of ``tenant`` with the id (else the name) ``ident``."""
        ai = self.app_instances.get(ident)
        if ai is not None and ai.tenant == tenant:
            return ai
        return self._by_name.get((tenant, ident))

    def named(self, tenant: str, name: str) -> AppInstance | None:
        return self._by_name.get((tenant, name))

    def app_instances_of(self, tenant: str) -> list[AppInstance]:
        """The tenant's app instances, oldest first."""
        return list(self._by_tenant.get(tenant, {}).values())

    def used_bytes(self) -> int:
        """Provisioned bytes of every volume (not times replicas, like EDF's capacity)."""
        return self._provisioned

    # ---- initiators ------------------------------------------------------------------

    def visible_initiator(self, tenant: str, iqn: str) -> Initiator | None:
        """The initiator as seen from ``tenant``: its own, else the nearest parent's."""
        t = tenant
        while True:
            init = self.initiators.get((t, iqn))
            if init is not None:
                return init
            if t == "/root":
                return None
            t = t.rsplit("/", 1)[0] or "/root"

    # ---- JSON: the snapshot and the journal's changes --------------------------------

    def objects(self) -> Iterable[Stored]:
        yield from self.tenants.values()
        yield from self.app_instances.values()
        yield from self.initiators.values()

    def to_json(self) -> dict[str, Any]:
        return {
            "format": STATE_FORMAT,
            "tenants": [to_json(t) for t in self.tenants.values()],
            "app_instances": [to_json(ai) for ai in self.app_instances.values()],
            "initiators": [to_json(i) for i in self.initiators.values()],
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> State:
        if obj.get("format") != STATE_FORMAT:
            raise ValueError(f"unknown simulator state format {obj.get('format')!r}")
        state = cls()
        state.tenants.clear()
        for collection in ("tenants", "app_instances", "initiators"):
            for item in obj[collection]:
                state.put(collection, item)
        return state

    def put(self, collection: str, item: dict[str, Any]) -> None:
        """Store (or replace) one object given in its persisted form."""
        if collection == "tenants":
            self.tenants[item["path"]] = Tenant(**item)
        elif collection == "initiators":
            init = Initiator(**item)
            self.initiators[(init.tenant, init.id)] = init
        else:
            ai = app_instance_from_json(item)
            old = self.app_instances.get(ai.id)
            if old is not None:
                self.remove_app_instance(old)
            self.add_app_instance(ai)

    def delete(self, collection: str, key: Any) -> None:
        """Forget one object (a journal's deletion); missing is fine (replays repeat)."""
        if collection == "tenants":
            self.tenants.pop(key, None)
        elif collection == "initiators":
            self.initiators.pop((key[0], key[1]), None)
        elif key in self.app_instances:
            self.remove_app_instance(self.app_instances[key])
