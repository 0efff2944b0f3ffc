"""A cluster outage, at startup or later, never makes the store read-only (issue 11, item 1).

glance_store's ``driver.Store.configure`` clears WRITE_ACCESS when ``configure_add`` raises
``BadStoreConfiguration`` and nothing sets it again; ``capabilities.check`` gates add *and*
delete on it (glance_store/driver.py, glance_store/capabilities.py). So configure_add must not
need the cluster, and an operation during an outage must fail with ``RemoteServiceUnavailable``
(glance answers 503, clients retry), the next one after the cluster is back working in the
same process.
"""

from __future__ import annotations

import hashlib
import io
import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from glance_store import capabilities, exceptions
from glance_store import multi_backend as multi_api
from oslo_config import cfg
from oslo_utils import units

from datera_glance.simulator import Simulator
from tests.plugins.store import Overrides, close_clients, datera_options


def attach_records(lock_path: Path) -> list[Path]:
    return sorted(lock_path.glob("datera-glance-attach-*.json"))


def round_trip(conf: cfg.ConfigOpts, data: bytes) -> None:
    """add, get (whole and a range), get_size and delete through glance_store's API."""
    image_id = str(uuid.uuid4())
    uri, size, md5, sha, _meta = multi_api.add_with_multihash(
        conf, image_id, io.BytesIO(data), len(data), "datera1", "sha256"
    )
    assert (size, md5, sha) == (
        len(data),
        hashlib.md5(data).hexdigest(),
        hashlib.sha256(data).hexdigest(),
    )
    it, got = multi_api.get(uri, "datera1")
    assert b"".join(it) == data and got == len(data)
    it, got = multi_api.get(uri, "datera1", offset=5, chunk_size=10)
    assert b"".join(it) == data[5:15]
    assert multi_api.get_size_from_uri_and_backend(uri, "datera1") == len(data)
    multi_api.delete(uri, "datera1")


def test_store_started_during_an_outage_serves_once_the_cluster_is_back(
    simulator_factory: Callable[..., Simulator], global_conf: Overrides, tmp_path: Path
) -> None:
    first = simulator_factory()
    port, data_dir = first.port, first.data_dir
    first.stop()  # the cluster is down while glance-api starts

    conf = cfg.CONF
    global_conf.config(enabled_backends={"datera1": "datera"})
    multi_api.register_store_opts(conf)
    locks = tmp_path / "locks"
    for name, value in datera_options(first, str(locks), datera_retry_deadline=0.3).items():
        global_conf.config(group="datera1", **{name: value})
    global_conf.config(group="glance_store", default_backend="datera1")
    started = time.monotonic()
    assert multi_api.create_multi_stores(conf) == 1
    assert time.monotonic() - started < 2.0, "configure must not wait for the cluster"
    store = multi_api.get_store_from_store_identifier("datera1")
    try:
        assert store.is_capable(capabilities.BitMasks.WRITE_ACCESS)
        data = os.urandom(units.Mi + 3)
        some_uri = f"{store.url_prefix}{uuid.uuid4()}"
        with pytest.raises(exceptions.RemoteServiceUnavailable):
            multi_api.add_with_multihash(
                conf, str(uuid.uuid4()), io.BytesIO(data), len(data), "datera1", "sha256"
            )
        with pytest.raises(exceptions.RemoteServiceUnavailable):
            multi_api.delete(some_uri, "datera1")  # not StoreDeleteNotSupported
        with pytest.raises(exceptions.RemoteServiceUnavailable):
            multi_api.get(some_uri, "datera1")

        cluster = simulator_factory(data_dir=data_dir, port=port)
        round_trip(conf, data)
        assert cluster.state()["app_instances"] == []

        cluster.stop()  # a second outage, after the store has logged in
        with pytest.raises(exceptions.RemoteServiceUnavailable):
            multi_api.add_with_multihash(
                conf, str(uuid.uuid4()), io.BytesIO(data), len(data), "datera1", "sha256"
            )
        cluster = simulator_factory(data_dir=data_dir, port=port)  # a new session is needed
        round_trip(conf, data)
        assert store.is_capable(capabilities.BitMasks.WRITE_ACCESS)
        assert cluster.state()["app_instances"] == []
        assert attach_records(locks) == []
    finally:
        close_clients([store])


def test_refused_logins_fail_operations_not_startup(
    simulator_factory: Callable[..., Simulator], global_conf: Overrides, tmp_path: Path
) -> None:
    """A cluster refusing logins (401) at startup: the store still configures; once logins
    work again, the same store works."""
    sim = simulator_factory()
    sim.add_fault("PUT", "^/login$", status=401, count=None, name="AuthenticationFailedError")
    conf = cfg.CONF
    global_conf.config(enabled_backends={"datera1": "datera"})
    multi_api.register_store_opts(conf)
    for name, value in datera_options(sim, str(tmp_path / "locks")).items():
        global_conf.config(group="datera1", **{name: value})
    global_conf.config(group="glance_store", default_backend="datera1")
    assert multi_api.create_multi_stores(conf) == 1
    store = multi_api.get_store_from_store_identifier("datera1")
    try:
        assert store.is_capable(capabilities.BitMasks.WRITE_ACCESS)
        with pytest.raises(exceptions.BackendException, match="login refused"):
            multi_api.add_with_multihash(
                conf, str(uuid.uuid4()), io.BytesIO(b"x" * 10), 10, "datera1", "sha256"
            )
        sim.clear_faults()
        round_trip(conf, os.urandom(4097))
        assert sim.state()["app_instances"] == []
    finally:
        close_clients([store])
