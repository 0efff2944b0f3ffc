"""How an image is named: its app instance's name on EDF and its location URI in glance.

An image's app instance is ``OS-IMAGE-<image id>``; the original driver's first version named
it ``OS-<image id>``, and both forms are still read. Location URIs:
``datera://<san_ip>:<san_port>/app_instances/<image_id>`` (the upstream driver's form) for
images in tenant ``/root``; for other tenants the tenant path goes before ``/app_instances``,
e.g. ``datera://10.0.0.1:7718/root/glance/app_instances/<image_id>``. The URI's last part is the
image id when the app instance has the current name, else the app instance's name. Whether an
app instance so named is glance's is ``ownership``'s rule, not the name's.
"""

from __future__ import annotations

from glance_store.common import utils

#: The scheme of location URIs (``Store.get_schemes``).
SCHEME = "datera"
AI_PREFIX = "OS-IMAGE-"
LEGACY_AI_PREFIX = "OS-"  # the original driver's first version named app instances OS-<id>
COLLECTION = "/app_instances/"  # between the cluster (and tenant) and the name in a URI
ROOT_TENANT = "/root"


def ai_name(image_id: str) -> str:
    """The name this driver gives the app instance of image ``image_id``."""
    return AI_PREFIX + image_id


def ai_names(image_id: str) -> tuple[str, str]:
    """Every name the app instance of ``image_id`` may have, the current form first."""
    return ai_name(image_id), LEGACY_AI_PREFIX + image_id


def named_image_id(name: str) -> str | None:
    """The image id an app instance name carries (either form), or None."""
    for prefix in (AI_PREFIX, LEGACY_AI_PREFIX):
        if name.startswith(prefix) and utils.is_uuid_like(name[len(prefix) :]):
            return name[len(prefix) :]
    return None


def uri_host(host: str) -> str:
    """``host`` as it appears in a URI: IPv6 addresses in brackets."""
    return f"[{host}]" if ":" in host else host


def uri_tenant(tenant: str) -> str:
    """The tenant's part of a location URI: none for ``/root`` (the upstream driver's form)."""
    return "" if tenant == ROOT_TENANT else tenant


def cluster_prefix(host: str, port: int) -> str:
    """The start of every location URI of a cluster, whatever its tenant."""
    return f"{SCHEME}://{uri_host(host)}:{port}/"


def location_prefix(host: str, port: int, tenant: str) -> str:
    """The start of every location URI of a cluster's tenant; the URI's last part follows."""
    return f"{cluster_prefix(host, port).rstrip('/')}{uri_tenant(tenant)}{COLLECTION}"


def uri_leaf(image_id: str, name: str) -> str:
    """A location URI's last part for the app instance ``name`` of ``image_id``."""
    return image_id if name == ai_name(image_id) else name


def parse_leaf(leaf: str) -> tuple[str, str] | None:
    """``(image id, app instance name)`` from a location URI's last part, or None."""
    image_id = named_image_id(leaf)
    if image_id is not None:
        return image_id, leaf
    if utils.is_uuid_like(leaf):
        return leaf, ai_name(leaf)
    return None
