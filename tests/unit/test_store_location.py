"""StoreLocation: URI round trips, the upstream driver's URIs, junk -> BadStoreUri."""

from __future__ import annotations

import pytest
from glance_store import exceptions
from glance_store import location as glance_location
from oslo_config import cfg

from datera_glance import store

ID = "0b6f2ab6-7c1d-4d3a-9d4e-6a1f0e0c9a11"


def parse(uri: str) -> store.StoreLocation:
    loc = store.StoreLocation({}, cfg.ConfigOpts())
    loc.parse_uri(uri)
    return loc


def make(**spec: object) -> store.StoreLocation:
    base: dict[str, object] = {"host": "10.0.0.5", "port": 7718, "image_id": ID}
    return store.StoreLocation({**base, **spec}, cfg.ConfigOpts())


@pytest.mark.parametrize(
    ("spec", "uri"),
    [
        ({}, f"datera://10.0.0.5:7718/app_instances/{ID}"),
        ({"tenant": "/root"}, f"datera://10.0.0.5:7718/app_instances/{ID}"),
        ({"tenant": "glance"}, f"datera://10.0.0.5:7718/root/glance/app_instances/{ID}"),
        ({"tenant": "/root/a/b"}, f"datera://10.0.0.5:7718/root/a/b/app_instances/{ID}"),
        ({"host": "fd00::5", "port": 7717}, f"datera://[fd00::5]:7717/app_instances/{ID}"),
        ({"host": "edf.example.com"}, f"datera://edf.example.com:7718/app_instances/{ID}"),
    ],
)
def test_round_trip(spec: dict[str, object], uri: str) -> None:
    loc = make(**spec)
    assert loc.get_uri() == uri
    back = parse(uri)
    assert (back.host, back.port, back.tenant, back.image_id, back.ai_name) == (
        loc.host,
        loc.port,
        loc.tenant,
        ID,
        f"OS-IMAGE-{ID}",
    )
    assert back.get_uri() == uri


def test_upstream_uri_forms_are_accepted() -> None:
    # what the upstream driver wrote: /app_instances/<id> (app instance OS-IMAGE-<id>)
    loc = parse(f"datera://172.16.1.1:7718/app_instances/{ID}")
    assert (loc.tenant, loc.ai_name) == ("/root", f"OS-IMAGE-{ID}")
    # its first version: /app_instances/OS-<id> (app instance OS-<id>); kept as it was
    old = parse(f"datera://172.16.1.1:7718/app_instances/OS-{ID}")
    assert (old.image_id, old.ai_name) == (ID, f"OS-{ID}")
    assert old.get_uri() == f"datera://172.16.1.1:7718/app_instances/OS-{ID}"
    full = parse(f"datera://172.16.1.1:7718/app_instances/OS-IMAGE-{ID}")
    assert (full.image_id, full.ai_name) == (ID, f"OS-IMAGE-{ID}")
    assert full.get_uri() == f"datera://172.16.1.1:7718/app_instances/{ID}"


@pytest.mark.parametrize(
    "uri",
    [
        f"file:///app_instances/{ID}",
        f"datera://10.0.0.5/app_instances/{ID}",  # no port
        f"datera://10.0.0.5:notaport/app_instances/{ID}",
        f"datera://:7718/app_instances/{ID}",
        "datera://10.0.0.5:7718/app_instances/",
        "datera://10.0.0.5:7718/app_instances/not-a-uuid",
        f"datera://10.0.0.5:7718/volumes/{ID}",
        f"datera://10.0.0.5:7718/tenant/app_instances/{ID}",  # a tenant not under /root
        f"datera://10.0.0.5:7718/app_instances/{ID}/extra",
        f"datera://10.0.0.5:7718/app_instances/{ID}?x=1",
        "datera://",
    ],
)
def test_bad_uris(uri: str) -> None:
    with pytest.raises(exceptions.BadStoreUri):
        parse(uri)


def test_glance_store_builds_our_location_from_a_uri() -> None:
    conf = cfg.ConfigOpts()
    loc = glance_location.Location(
        "datera", store.StoreLocation, conf, uri=f"datera://10.0.0.5:7718/root/t/app_instances/{ID}"
    )
    assert loc.store_location.image_id == ID
    assert loc.store_location.tenant == "/root/t"
    assert loc.get_store_uri() == f"datera://10.0.0.5:7718/root/t/app_instances/{ID}"


@pytest.mark.parametrize(
    ("tenant", "expected"),
    [
        (None, "/root"),
        ("", "/root"),
        ("root", "/root"),
        ("/root/", "/root"),
        ("a", "/root/a"),
        ("/root/a/b", "/root/a/b"),
        ("a/b", "/root/a/b"),
    ],
)
def test_normalize_tenant(tenant: str | None, expected: str) -> None:
    assert store.normalize_tenant(tenant) == expected
