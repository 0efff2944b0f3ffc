"""Typed results of the EDF client: small frozen dataclasses parsed from EDF JSON entities.

The Store and the attach code read these, never raw dicts. ``from_json`` accepts the v2.1 and
v2.2 entity shapes (references as ``{"path": ...}`` objects, collections as arrays).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["AppInstance", "Initiator", "StorageInstance", "System", "Volume"]


def _str(obj: Mapping[str, Any], key: str) -> str:
    value = obj.get(key)
    return "" if value is None else str(value)


def _int(obj: Mapping[str, Any], key: str) -> int:
    value = obj.get(key)
    if value is None or value == "":
        return 0
    return int(value)


def _ref_path(ref: Any) -> str:
    # v2.1+ references are {"path": ...}; pre-2.1 ("v2") used plain strings.
    if isinstance(ref, Mapping):
        return _str(ref, "path")
    return str(ref)


@dataclass(frozen=True)
class System:
    """``GET /system``: identity, product version and capacity in bytes."""

    name: str
    uuid: str
    sw_version: str
    total_capacity: int
    available_capacity: int

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> System:
        return cls(
            name=_str(obj, "name"),
            uuid=_str(obj, "uuid"),
            sw_version=_str(obj, "sw_version"),
            total_capacity=_int(obj, "total_capacity"),
            available_capacity=_int(obj, "available_capacity"),
        )

    @property
    def version_tuple(self) -> tuple[int, ...]:
        """``sw_version`` as integers for comparisons (``"3.3.0.0"`` -> ``(3, 3, 0, 0)``)."""
        parts: list[int] = []
        for piece in self.sw_version.split("."):
            digits = "".join(ch for ch in piece if ch.isdigit())
            if not digits:
                break
            parts.append(int(digits))
        return tuple(parts)


@dataclass(frozen=True)
class Initiator:
    """A host initiator (``/initiators/<iqn>``); ``tenant`` matters on v2.2."""

    id: str
    name: str
    path: str
    tenant: str

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Initiator:
        return cls(
            id=_str(obj, "id"),
            name=_str(obj, "name"),
            path=_str(obj, "path"),
            tenant=_str(obj, "tenant") or "/root",
        )


@dataclass(frozen=True)
class Volume:
    """A volume (LUN); ``size_gib`` is EDF's ``size``, which is in GiB."""

    name: str
    path: str
    uuid: str
    size_gib: int
    op_state: str

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Volume:
        return cls(
            name=_str(obj, "name"),
            path=_str(obj, "path"),
            uuid=_str(obj, "uuid"),
            size_gib=_int(obj, "size"),
            op_state=_str(obj, "op_state"),
        )


@dataclass(frozen=True)
class StorageInstance:
    """A storage instance (iSCSI target): access, ACL, auth type and its volumes."""

    name: str
    path: str
    admin_state: str
    op_state: str
    iqn: str
    ips: tuple[str, ...]
    device_path: str | None  # simulator-only ``access.device_path``; None on a real cluster
    acl_initiators: tuple[str, ...]
    volumes: tuple[Volume, ...]
    auth_type: str
    chap_user: str = ""  # ``auth.target_user_name`` (the password is never shown)

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> StorageInstance:
        access = obj.get("access") or {}
        acl = obj.get("acl_policy") or {}
        auth = obj.get("auth") or {}
        device_path = access.get("device_path")
        return cls(
            name=_str(obj, "name"),
            path=_str(obj, "path"),
            admin_state=_str(obj, "admin_state"),
            op_state=_str(obj, "op_state"),
            iqn=_str(access, "iqn"),
            ips=tuple(str(ip) for ip in access.get("ips") or ()),
            device_path=str(device_path) if device_path else None,
            acl_initiators=tuple(_ref_path(r) for r in acl.get("initiators") or ()),
            volumes=tuple(Volume.from_json(v) for v in obj.get("volumes") or ()),
            auth_type=_str(auth, "type") or "none",
            chap_user=_str(auth, "target_user_name"),
        )

    @property
    def volume(self) -> Volume:
        """The first volume (the drivers create exactly one, ``volume-1``)."""
        if not self.volumes:
            raise LookupError(f"storage instance {self.path or self.name} has no volumes")
        return self.volumes[0]


@dataclass(frozen=True)
class AppInstance:
    """An app instance with its nested storage instances."""

    id: str
    name: str
    uuid: str
    path: str
    tenant: str
    admin_state: str
    storage_instances: tuple[StorageInstance, ...]
    descr: str = ""  # set by whoever created it (datera_glance.ownership's marker)

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> AppInstance:
        return cls(
            id=_str(obj, "id"),
            name=_str(obj, "name"),
            uuid=_str(obj, "uuid"),
            path=_str(obj, "path"),
            tenant=_str(obj, "tenant") or "/root",
            admin_state=_str(obj, "admin_state"),
            storage_instances=tuple(
                StorageInstance.from_json(si) for si in obj.get("storage_instances") or ()
            ),
            descr=_str(obj, "descr"),
        )

    @property
    def storage_instance(self) -> StorageInstance:
        """The first storage instance (the drivers create exactly one, ``storage-1``)."""
        if not self.storage_instances:
            raise LookupError(f"app instance {self.path or self.name} has no storage instances")
        return self.storage_instances[0]

    @property
    def volume(self) -> Volume:
        """The first volume of the first storage instance."""
        return self.storage_instance.volume
