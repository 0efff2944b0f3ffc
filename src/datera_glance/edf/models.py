"""Typed results of the EDF client: small frozen dataclasses parsed from EDF JSON entities.

The Store and the attach code read these, never raw dicts. ``from_json`` accepts the v2.1 and
v2.2 entity shapes (references as ``{"path": ...}`` objects, collections as arrays) and
nothing else: a field of another type is ``errors.Malformed`` naming it (``where`` is the
entity's place in the answer, e.g. ``app_instance.storage_instances[0]``), which the session
turns into ``UnexpectedResponse`` naming the call.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from datera_glance.edf.errors import Malformed

__all__ = ["AclPolicy", "AppInstance", "Initiator", "StorageInstance", "System", "Volume", "entity"]


def entity(obj: Any, where: str) -> Mapping[str, Any]:
    """``obj`` if it is a JSON object; ``Malformed`` naming ``where`` otherwise."""
    if not isinstance(obj, Mapping):
        raise Malformed(where, "an object", obj)
    return obj


def _part(obj: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    """A nested object that may be absent (``{}`` then)."""
    value = obj.get(key)
    return {} if value is None else entity(value, f"{where}.{key}")


def _items(obj: Mapping[str, Any], key: str, where: str) -> list[Any]:
    """A JSON array that may be absent (``[]`` then)."""
    value = obj.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise Malformed(f"{where}.{key}", "an array", value)
    return value


def _str(obj: Mapping[str, Any], key: str, where: str = "") -> str:
    value = obj.get(key)
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise Malformed(f"{where}.{key}" if where else key, "a string", value)


def _int(obj: Mapping[str, Any], key: str, where: str = "") -> int:
    """An integer field (EDF's schema types sizes and capacities as integers)."""
    value = obj.get(key)
    if value is None:
        return 0
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise Malformed(f"{where}.{key}" if where else key, "a non-negative integer", value)


def _text(value: Any, where: str) -> str:
    if isinstance(value, str):
        return value
    raise Malformed(where, "a string", value)


def _ref_path(ref: Any, where: str) -> str:
    # v2.1+ references are {"path": ...}; pre-2.1 ("v2") used plain strings.
    if isinstance(ref, Mapping):
        return _str(ref, "path", where)
    if isinstance(ref, str):
        return ref
    raise Malformed(where, "a reference", ref)


def _refs(obj: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    """The paths of an array of references that may be absent."""
    return tuple(
        _ref_path(ref, f"{where}.{key}[{i}]") for i, ref in enumerate(_items(obj, key, where))
    )


@dataclass(frozen=True)
class System:
    """``GET /system``: identity, product version and capacity in bytes."""

    name: str
    uuid: str
    sw_version: str
    total_capacity: int
    available_capacity: int

    @classmethod
    def from_json(cls, obj: Any, where: str = "system") -> System:
        obj = entity(obj, where)
        return cls(
            name=_str(obj, "name", where),
            uuid=_str(obj, "uuid", where),
            sw_version=_str(obj, "sw_version", where),
            total_capacity=_int(obj, "total_capacity", where),
            available_capacity=_int(obj, "available_capacity", where),
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
    def from_json(cls, obj: Any, where: str = "initiator") -> Initiator:
        obj = entity(obj, where)
        return cls(
            id=_str(obj, "id", where),
            name=_str(obj, "name", where),
            path=_str(obj, "path", where),
            tenant=_str(obj, "tenant", where) or "/root",
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
    def from_json(cls, obj: Any, where: str = "volume") -> Volume:
        obj = entity(obj, where)
        return cls(
            name=_str(obj, "name", where),
            path=_str(obj, "path", where),
            uuid=_str(obj, "uuid", where),
            size_gib=_int(obj, "size", where),
            op_state=_str(obj, "op_state", where),
        )


@dataclass(frozen=True)
class AclPolicy:
    """A storage instance's ``acl_policy``: initiator and initiator group paths."""

    initiators: tuple[str, ...]
    groups: tuple[str, ...]

    @classmethod
    def from_json(cls, obj: Any, where: str = "acl_policy") -> AclPolicy:
        obj = entity(obj, where)
        return cls(
            initiators=_refs(obj, "initiators", where), groups=_refs(obj, "initiator_groups", where)
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
    def from_json(cls, obj: Any, where: str = "storage_instance") -> StorageInstance:
        obj = entity(obj, where)
        access = _part(obj, "access", where)
        auth = _part(obj, "auth", where)
        at = (f"{where}.access", f"{where}.auth")
        ips = _items(access, "ips", at[0])
        return cls(
            name=_str(obj, "name", where),
            path=_str(obj, "path", where),
            admin_state=_str(obj, "admin_state", where),
            op_state=_str(obj, "op_state", where),
            iqn=_str(access, "iqn", at[0]),
            ips=tuple(_text(ip, f"{at[0]}.ips[{i}]") for i, ip in enumerate(ips)),
            device_path=_str(access, "device_path", at[0]) or None,
            acl_initiators=AclPolicy.from_json(
                obj.get("acl_policy") or {}, f"{where}.acl_policy"
            ).initiators,
            volumes=tuple(
                Volume.from_json(v, f"{where}.volumes[{i}]")
                for i, v in enumerate(_items(obj, "volumes", where))
            ),
            auth_type=_str(auth, "type", at[1]) or "none",
            chap_user=_str(auth, "target_user_name", at[1]),
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
    def from_json(cls, obj: Any, where: str = "app_instance") -> AppInstance:
        obj = entity(obj, where)
        return cls(
            id=_str(obj, "id", where),
            name=_str(obj, "name", where),
            uuid=_str(obj, "uuid", where),
            path=_str(obj, "path", where),
            tenant=_str(obj, "tenant", where) or "/root",
            admin_state=_str(obj, "admin_state", where),
            storage_instances=tuple(
                StorageInstance.from_json(si, f"{where}.storage_instances[{i}]")
                for i, si in enumerate(_items(obj, "storage_instances", where))
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
