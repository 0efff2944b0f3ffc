"""Which tenant Datera's Cinder driver looks in for images, for ``check``'s fast-clone line.

Datera/cinder-driver ``datera_iscsi.py`` (``DateraDriver.__init__``: an unset
``datera_tenant_id`` becomes ``""``, the string ``"None"`` becomes ``None``) and
``datera_common.py`` (``get_tenant``, ``_format_tenant``: ``Map`` is ``/root/OS-<project id>``,
a value containing "root" anywhere is ``/root``, any other value ``/root/<value>``).
"""

from __future__ import annotations

from datera_glance.edf import normalize_tenant

MAP_PREFIX = "/root/OS-"  # datera_common.get_name({'id': project_id}) under /root


def cinder_tenant(tenant_id: str) -> str | None:
    """The tenant Cinder's driver uses with ``datera_tenant_id = tenant_id`` ("" for unset);
    None for ``Map`` (one per project) and for ``None`` (the driver fails on it)."""
    if tenant_id.lower() in ("map", "none"):
        return None
    if not tenant_id or "root" in tenant_id:
        return "/root"
    return "/" + "/".join(("root", tenant_id)).strip("/")


def setting_for(tenant: str) -> str | None:
    """The Cinder ``datera_tenant_id`` that looks in ``tenant`` (a normalised path), or None.

    ``"unset"`` for ``/root``; ``"Map (project P only)"`` for ``/root/OS-P``.
    """
    if tenant == "/root":
        return "unset"
    rest = tenant.removeprefix("/root/")
    if "root" in rest:
        return None
    if tenant.startswith(MAP_PREFIX) and "/" not in rest:
        return f"{rest} (or Map, for project {tenant.removeprefix(MAP_PREFIX)} only)"
    return rest


def agreement(tenant: str, cinder_tenant_id: str) -> tuple[bool, str]:
    """(fast clones?, why) for this backend's ``tenant`` and Cinder's ``datera_tenant_id``."""
    shown = cinder_tenant_id or "unset"
    if cinder_tenant_id.lower() == "none":
        return False, "Cinder's Datera driver fails with datera_tenant_id = None (the string)"
    if cinder_tenant_id.lower() == "map":
        if tenant.startswith(MAP_PREFIX) and "/" not in tenant.removeprefix(MAP_PREFIX):
            project = tenant.removeprefix(MAP_PREFIX)
            return False, f"Map: only project {project} finds these images; others copy them"
        return False, f"Map: each project looks in /root/OS-<project id>, never in {tenant}"
    looks_in = cinder_tenant(cinder_tenant_id)
    if looks_in == normalize_tenant(tenant):
        return True, f"Cinder (datera_tenant_id {shown}) looks in {looks_in}, where the images are"
    return False, f"Cinder (datera_tenant_id {shown}) looks in {looks_in}, images are in {tenant}"
