"""Images written by Datera's original driver, in a tenant other than /root (issue 11, item 3).

That driver named app instances ``OS-IMAGE-<id>`` (its first version ``OS-<id>``), set
metadata ``{"checksum", "length", "type": "image"}`` and wrote
``datera://HOST:PORT/app_instances/<leaf>`` whatever its ``datera_tenant_id``: a tenant-less URI
means the configured tenant. glance maps a location without a store to a backend by prefix
(glance/common/store_utils.py ``_get_store_id_from_uri``, mirrored below), so a deployment
moving from legacy mode to multistore must find its backend for those URIs too.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path
from typing import Any

import pytest
from glance_store import backend as legacy_api
from glance_store import exceptions, location
from glance_store import multi_backend as multi_api
from oslo_config import cfg
from oslo_utils import units

from datera_glance.simulator import Simulator
from datera_glance.store import StoreLocation
from tests.plugins.simulator import Edf
from tests.plugins.store import Overrides, close_clients, datera_options

TENANT = "/root/glance"


def store_id_from_uri(uri: str) -> str | None:
    """glance.common.store_utils._get_store_id_from_uri (glance 33), without the logging."""
    scheme = uri.split("://", 1)[0]
    for store_id, entry in location.SCHEME_TO_CLS_BACKEND_MAP.get(scheme, {}).items():
        prefix = entry["store"].url_prefix
        if prefix and uri.startswith(prefix):
            return str(store_id)
    return None


def original_driver_image(sim: Simulator, name: str, image_id: str, data: bytes) -> None:
    """An app instance as Datera's original driver left it: in TENANT, data written,
    metadata set."""
    root = Edf(sim)
    root.call("POST", "/tenants", json={"name": TENANT.rsplit("/", 1)[1]}, expect=200)
    root.close()
    edf = Edf(sim, tenant=TENANT)
    ai = edf.create_ai(name, uuid=image_id)["data"]
    [state] = [a for a in sim.state()["app_instances"] if a["id"] == ai["id"]]
    with open(state["file"], "r+b") as f:
        f.write(data)
    md5 = hashlib.md5(data).hexdigest()
    edf.call(
        "PUT",
        f"/app_instances/{ai['id']}/metadata",
        json={"checksum": md5, "length": str(len(data)), "type": "image"},
    )
    edf.close()


@pytest.mark.parametrize(
    ("name_prefix", "leaf_prefix"), [("OS-IMAGE-", ""), ("OS-", "OS-")], ids=["v2", "v1"]
)
def test_tenant_less_uri_of_the_original_driver_in_multistore(
    simulator: Simulator,
    global_conf: Overrides,
    tmp_path: Path,
    name_prefix: str,
    leaf_prefix: str,
) -> None:
    image_id = str(uuid.uuid4())
    data = os.urandom(units.Mi + 11)
    original_driver_image(simulator, f"{name_prefix}{image_id}", image_id, data)
    uri = f"datera://{simulator.host}:{simulator.port}/app_instances/{leaf_prefix}{image_id}"

    conf = cfg.CONF
    global_conf.config(enabled_backends={"datera1": "datera"})
    multi_api.register_store_opts(conf)
    for name, value in datera_options(simulator, str(tmp_path / "locks")).items():
        global_conf.config(group="datera1", **{name: value})
    global_conf.config(group="datera1", datera_tenant_id=TENANT)
    global_conf.config(group="glance_store", default_backend="datera1")
    assert multi_api.create_multi_stores(conf) == 1
    store = multi_api.get_store_from_store_identifier("datera1")
    try:
        assert store_id_from_uri(uri) == "datera1"
        # what this store writes still carries its tenant, and maps to it as well
        new_uri = f"{store.settings.url_prefix}{uuid.uuid4()}"
        assert new_uri.startswith(f"datera://{simulator.host}:{simulator.port}{TENANT}/")
        assert store_id_from_uri(new_uri) == "datera1"

        it, size = multi_api.get(uri, "datera1")
        assert b"".join(it) == data and size == len(data)
        it, size = multi_api.get(uri, "datera1", offset=100, chunk_size=1000)
        assert b"".join(it) == data[100:1100] and size == 1000
        assert multi_api.get_size_from_uri_and_backend(uri, "datera1") == len(data)
        multi_api.delete(uri, "datera1")
        with pytest.raises(exceptions.NotFound):
            multi_api.get_size_from_uri_and_backend(uri, "datera1")
        assert simulator.state()["app_instances"] == []
    finally:
        close_clients([store])


def test_tenant_less_uri_of_the_original_driver_in_legacy_mode(
    simulator: Simulator, global_conf: Overrides, tmp_path: Path
) -> None:
    image_id = str(uuid.uuid4())
    data = os.urandom(3 * 4096 + 1)
    original_driver_image(simulator, f"OS-IMAGE-{image_id}", image_id, data)
    uri = f"datera://{simulator.host}:{simulator.port}/app_instances/{image_id}"
    conf = cfg.CONF
    legacy_api.register_opts(conf)
    global_conf.config(group="glance_store", stores=["datera"])
    options: dict[str, Any] = datera_options(simulator, str(tmp_path / "locks"))
    for name, value in {**options, "datera_tenant_id": TENANT}.items():
        global_conf.config(group="glance_store", **{name: value})
    assert legacy_api.create_stores(conf) >= 1
    store = legacy_api.get_store_from_scheme("datera")
    try:
        it, size = legacy_api.get_from_backend(uri)
        assert b"".join(it) == data and size == len(data)
        assert legacy_api.get_size_from_backend(uri) == len(data)
        legacy_api.delete_from_backend(uri)
        assert simulator.state()["app_instances"] == []
    finally:
        close_clients([store])


def test_uri_of_another_tenant_is_still_refused(simulator: Simulator, store_factory: Any) -> None:
    """Only a URI *without* a tenant means the configured one."""
    store = store_factory(simulator, tenant_id=TENANT)
    other = f"datera://{simulator.host}:{simulator.port}/root/other/app_instances/{uuid.uuid4()}"
    loc = location.Location("datera", StoreLocation, store.conf, uri=other, backend="datera1")
    with pytest.raises(exceptions.BadStoreUri):
        store.get_size(loc)
