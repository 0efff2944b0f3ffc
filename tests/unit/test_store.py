"""The Store through glance_store's own API (multistore and legacy), and its configuration.

These run on the file-backend simulator (the volume's sparse file is the "device"), so they
need no root; the loop-device contract suite is tests/integration/test_store_contract.py.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import socket
import time
import uuid
from typing import Any

import pytest
from glance_store import backend as legacy_api
from glance_store import capabilities, exceptions, location
from glance_store import multi_backend as multi_api
from oslo_config import cfg
from oslo_utils import units

from datera_glance.simulator import Simulator
from datera_glance.store import Store, StoreLocation, StoreSettings
from tests.plugins.store import Overrides, StoreFactory, close_clients, datera_options


def datera_backends(
    simulator: Simulator, global_conf: Overrides, tmp_path: Any, names: tuple[str, str]
) -> cfg.ConfigOpts:
    """glance-api's conf with Datera backends ``names`` on ``simulator`` (the first the
    default), options alike; the caller sets what differs before ``create_multi_stores``."""
    conf = cfg.CONF
    global_conf.config(enabled_backends=dict.fromkeys(names, "datera"))
    multi_api.register_store_opts(conf)
    for name, value in datera_options(simulator, str(tmp_path / "locks")).items():
        for backend in names:
            global_conf.config(group=backend, **{name: value})
    global_conf.config(group="glance_store", default_backend=names[0])
    return conf


def test_multistore_through_glance_store_api(
    simulator: Simulator, global_conf: Overrides, tmp_path: Any
) -> None:
    """Two Datera backends on one cluster, told apart by tenant, as glance-api uses them."""
    conf = datera_backends(simulator, global_conf, tmp_path, ("fast", "other"))
    global_conf.config(group="other", datera_tenant_id="/root/other")
    assert multi_api.create_multi_stores(conf) == 2
    multi_api.verify_store()
    stores = [multi_api.get_store_from_store_identifier(b) for b in ("fast", "other")]
    try:
        data = os.urandom(3 * units.Mi + 5)
        uris = {}
        for backend in ("fast", "other"):
            image_id = str(uuid.uuid4())
            uri, size, md5, multihash, meta = multi_api.add_with_multihash(
                conf, image_id, io.BytesIO(data), len(data), backend, "sha256"
            )
            assert (size, md5, multihash) == (
                len(data),
                hashlib.md5(data).hexdigest(),
                hashlib.sha256(data).hexdigest(),
            )
            assert meta == {"store": backend}
            uris[backend] = uri
        # glance maps a location to its backend by url_prefix: exactly one matches each URI
        for backend, uri in uris.items():
            owners = [s.backend_group for s in stores if uri.startswith(s.url_prefix)]
            assert owners == [backend]
        for backend, uri in uris.items():
            it, size = multi_api.get(uri, backend, offset=10, chunk_size=100)
            assert b"".join(it) == data[10:110] and size == 100
            it, size = multi_api.get(uri, backend)
            assert b"".join(it) == data and size == len(data)
            assert multi_api.get_size_from_uri_and_backend(uri, backend) == len(data)
            multi_api.delete(uri, backend)
            with pytest.raises(exceptions.NotFound):
                multi_api.delete(uri, backend)
        assert simulator.state()["app_instances"] == []
    finally:
        close_clients(stores)


def test_two_backends_in_one_tenant_refused_at_start(
    simulator: Simulator, global_conf: Overrides, tmp_path: Any
) -> None:
    """Two Datera backends on one cluster and tenant would both name an image ``OS-IMAGE-<id>``
    there: copying an image from one to the other fails with Duplicate, and Datera's Cinder
    driver (``datera_common.cvol_to_ai``: ``match(name,.*<id>.*)``, first hit) must find one
    app instance per image. The second is refused at glance-api's start naming
    ``datera_tenant_id``; glance-api and the first keep working, the second's images stay
    readable (glance_store/driver.py ``configure`` clears only WRITE_ACCESS on
    ``BadStoreConfiguration``). With a tenant of its own, the same image goes to both."""
    conf = datera_backends(simulator, global_conf, tmp_path, ("flash", "hybrid"))
    global_conf.config(group="flash", datera_placement_mode="all_flash")
    assert multi_api.create_multi_stores(conf) == 2
    flash, hybrid = (multi_api.get_store_from_store_identifier(b) for b in ("flash", "hybrid"))
    stores = [flash, hybrid]
    try:
        shared = r"datera_tenant_id of backend hybrid is /root on cluster .* as backend flash's"
        with pytest.raises(exceptions.BadStoreConfiguration, match=shared) as refused:
            hybrid.configure(re_raise_bsc=True)
        assert "give [hybrid] a tenant of its own" in str(refused.value)
        data = os.urandom(units.Mi + 5)
        image_id = str(uuid.uuid4())
        uri = multi_api.add_with_multihash(
            conf, image_id, io.BytesIO(data), len(data), "flash", "sha256"
        )[0]
        with pytest.raises(exceptions.StoreAddDisabled):
            multi_api.add_with_multihash(
                conf, image_id, io.BytesIO(data), len(data), "hybrid", "sha256"
            )
        it, _ = multi_api.get(uri, "hybrid")  # still readable there
        assert b"".join(it) == data

        global_conf.config(group="hybrid", datera_tenant_id="/root/hybrid")  # and a restart
        restarted = Store(conf, backend="hybrid")
        stores.append(restarted)
        restarted.configure(re_raise_bsc=True)
        copied = multi_api.store_add_to_backend_with_multihash(
            image_id, io.BytesIO(data), len(data), "sha256", restarted
        )[0]
        assert copied != uri and copied.startswith(restarted.url_prefix)
        multi_api.delete(uri, "flash")
        restarted.delete(location.get_location_from_uri_and_backend(copied, "hybrid", conf=conf))
        assert simulator.state()["app_instances"] == []
    finally:
        close_clients(stores)


def test_legacy_single_store_through_glance_store_api(
    simulator: Simulator, global_conf: Overrides, tmp_path: Any
) -> None:
    conf = cfg.CONF
    legacy_api.register_opts(conf)
    global_conf.config(group="glance_store", stores=["datera"])
    for name, value in datera_options(simulator, str(tmp_path / "locks")).items():
        global_conf.config(group="glance_store", **{name: value})
    assert legacy_api.create_stores(conf) >= 1
    store = legacy_api.get_store_from_scheme("datera")
    try:
        assert isinstance(store, Store) and store.backend_group is None
        data = os.urandom(2 * units.Mi + 1)
        image_id = str(uuid.uuid4())
        uri, size, md5, multihash, meta = legacy_api.add_to_backend_with_multihash(
            conf, image_id, io.BytesIO(data), len(data), "sha512", scheme="datera"
        )
        assert (size, md5, multihash, meta) == (
            len(data),
            hashlib.md5(data).hexdigest(),
            hashlib.sha512(data).hexdigest(),
            {},
        )
        # the pre-0.26 add() still used by glance's staging code: a 4-tuple, md5 inserted
        old_id = str(uuid.uuid4())
        old = store.add(old_id, io.BytesIO(b"x" * 10), 10)
        assert len(old) == 4 and old[2] == hashlib.md5(b"x" * 10).hexdigest()
        it, got_size = legacy_api.get_from_backend(uri)
        assert b"".join(it) == data and got_size == len(data)
        assert legacy_api.get_size_from_backend(uri) == len(data)
        legacy_api.delete_from_backend(uri)
        legacy_api.delete_from_backend(old[0])
        with pytest.raises(exceptions.NotFound):
            legacy_api.get_size_from_backend(uri)
        assert simulator.state()["app_instances"] == []
    finally:
        close_clients([store])


@pytest.mark.parametrize("missing", ["san_ip", "san_login", "san_password"])
def test_missing_credential_names_the_option(
    simulator: Simulator, store_factory: StoreFactory, missing: str
) -> None:
    store = store_factory(simulator, **{missing: None})
    assert not store.is_capable(capabilities.BitMasks.WRITE_ACCESS)
    with pytest.raises(exceptions.BadStoreConfiguration, match=f"datera_{missing} is not set"):
        store.configure_add()
    with pytest.raises(exceptions.StoreAddDisabled):
        store.add(str(uuid.uuid4()), io.BytesIO(b"x"), 1, "sha512")


@pytest.mark.parametrize("name", ["iqn.x:y", "host1", "iqn.2004-10.com.example/host"])
def test_bad_initiator_name_is_a_configuration_error(
    simulator: Simulator, store_factory: StoreFactory, name: str
) -> None:
    store = store_factory(simulator, initiator_name=name)
    assert not store.is_capable(capabilities.BitMasks.WRITE_ACCESS)
    with pytest.raises(exceptions.BadStoreConfiguration, match="datera_initiator_name"):
        store.configure_add()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_unreachable_cluster_keeps_writes_enabled(
    store_factory: StoreFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """glance_store's driver.Store.configure clears WRITE_ACCESS for good on
    BadStoreConfiguration, and capabilities.check then refuses add and delete: an unreachable
    cluster at startup must not raise it (nor wait for it). Operations fail as 503s instead."""

    class Nowhere:
        host, port, tls, ca_file = "127.0.0.1", closed_port(), False, None

    with caplog.at_level(logging.DEBUG):
        started = time.monotonic()
        store = store_factory(Nowhere(), retry_deadline=0.5, san_password="Zq9-not-logged")
        assert time.monotonic() - started < 0.5  # no login, no retries at startup
        assert store.is_capable(capabilities.BitMasks.WRITE_ACCESS)
        assert store.is_capable(capabilities.BitMasks.READ_RANDOM)
        with pytest.raises(exceptions.RemoteServiceUnavailable):
            store.add(str(uuid.uuid4()), io.BytesIO(b"x"), 1, "sha512")
    assert "Zq9-not-logged" not in caplog.text


def test_capabilities_and_prefix(simulator: Simulator, store_factory: StoreFactory) -> None:
    store = store_factory(simulator)
    for cap in (
        capabilities.BitMasks.READ_RANDOM,
        capabilities.BitMasks.WRITE_ACCESS,
        capabilities.BitMasks.DRIVER_REUSABLE,
    ):
        assert store.is_capable(cap)
    assert not store.is_capable(capabilities.BitMasks.WRITE_OFFSET)
    assert store.get_schemes() == ("datera",)
    assert store.url_prefix == f"datera://{simulator.host}:{simulator.port}/app_instances/"
    assert store.READ_CHUNKSIZE == store.WRITE_CHUNKSIZE == 4 * units.Mi


def test_settings_hide_the_password(simulator: Simulator, store_factory: StoreFactory) -> None:
    store = store_factory(simulator, san_password="s3cr3t-Pw")
    settings = store._configured().settings
    assert isinstance(settings, StoreSettings)
    assert "s3cr3t-Pw" not in repr(settings)
    assert settings.growth_step_gib == 1
    assert StoreSettings.__dataclass_params__.frozen  # type: ignore[attr-defined]


def test_growth_step_rounds_up_and_is_capped(
    simulator: Simulator, store_factory: StoreFactory
) -> None:
    for chunk, step in [(1, 1), (1024**3, 1), (1024**3 + 1, 2), (1024**4, 64)]:
        store = store_factory(simulator, chunk_size=chunk)
        assert store._configured().settings.growth_step_gib == step


def test_io_buffer_size_must_be_whole_pages(
    simulator: Simulator, store_factory: StoreFactory
) -> None:
    store = store_factory(simulator, io_buffer_size=1024 * 1024 + 4096)
    assert store.WRITE_CHUNKSIZE == 1024 * 1024 + 4096
    odd = store_factory(simulator, io_buffer_size=1024 * 1024 + 1)
    assert not odd.is_capable(capabilities.BitMasks.WRITE_ACCESS)
    with pytest.raises(exceptions.BadStoreConfiguration, match="use 1052672"):
        odd.configure_add()


def test_no_secret_in_debug_logs(
    simulator_factory: Any, store_factory: StoreFactory, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "Zq9-cluster-secret"
    simulator = simulator_factory(password=secret)
    with caplog.at_level(logging.DEBUG):
        store = store_factory(simulator, san_password=secret)
        data = os.urandom(units.Mi)
        uri = store.add(str(uuid.uuid4()), io.BytesIO(data), len(data), "sha512")[0]
        loc = location.Location("datera", StoreLocation, store.conf, uri=uri, backend="datera1")
        assert b"".join(store.get(loc)[0]) == data
        store.delete(loc)
    assert "Stored image" in caplog.text  # the logs were captured
    assert "POST /v2.2/app_instances" in caplog.text or "app_instances" in caplog.text
    assert secret not in caplog.text
