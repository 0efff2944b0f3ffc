"""The simulator's stored objects (``State``) and their JSON form; no I/O here."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from oslo_utils import units

STATE_FORMAT = 1


@dataclass
class Volume:
    name: str
    uuid: str
    size: float  # GiB, like the API (a JSON number: fractions are allowed)
    replica_count: int
    placement_mode: str
    file: str
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


@dataclass
class State:
    """Everything that survives a restart (sessions and faults do not)."""

    tenants: dict[str, Tenant] = field(default_factory=lambda: {"/root": Tenant("/root")})
    app_instances: dict[str, AppInstance] = field(default_factory=dict)
    # (tenant, iqn) -> Initiator: on v2.2 the same IQN may exist once per tenant.
    initiators: dict[tuple[str, str], Initiator] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        ais = []
        for ai in self.app_instances.values():
            d = dataclasses.asdict(ai)
            d.pop("online_since")
            for si in d["storage_instances"]:
                for vol in si["volumes"]:
                    vol.pop("device_path")
            ais.append(d)
        return {
            "format": STATE_FORMAT,
            "tenants": [dataclasses.asdict(t) for t in self.tenants.values()],
            "app_instances": ais,
            "initiators": [dataclasses.asdict(i) for i in self.initiators.values()],
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> State:
        if obj.get("format") != STATE_FORMAT:
            raise ValueError(f"unknown simulator state format {obj.get('format')!r}")
        state = cls(tenants={}, app_instances={}, initiators={})
        for t in obj["tenants"]:
            state.tenants[t["path"]] = Tenant(**t)
        for a in obj["app_instances"]:
            sis = []
            for s in a.pop("storage_instances"):
                vols = [Volume(**v) for v in s.pop("volumes")]
                sis.append(StorageInstance(volumes=vols, **s))
            ai = AppInstance(storage_instances=sis, **a)
            state.app_instances[ai.id] = ai
        for i in obj["initiators"]:
            init = Initiator(**i)
            state.initiators[(init.tenant, init.id)] = init
        return state

    def app_instance(self, tenant: str, ident: str) -> AppInstance | None:
        """The app instance of ``tenant`` with the id (else the name) ``ident``."""
        ai = self.app_instances.get(ident)
        if ai is not None and ai.tenant == tenant:
            return ai
        for ai in self.app_instances.values():
            if ai.name == ident and ai.tenant == tenant:
                return ai
        return None

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

    def used_bytes(self) -> int:
        """Provisioned bytes of every volume (not times replicas, like EDF's capacity)."""
        return sum(v.size_bytes for ai in self.app_instances.values() for v in ai.volumes)
