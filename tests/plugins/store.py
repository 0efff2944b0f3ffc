"""Fixtures: ``store_factory`` — a configured Datera ``Store`` talking to a simulator.

``store_factory(simulator, *, copier=None, backend="datera1", **options)`` builds a fresh
``ConfigOpts``, sets the options (``chunk_size=...`` or ``datera_chunk_size=...``) in the
backend's group (``backend=None``: legacy ``[glance_store]``), points the LOCAL connector at
the simulator's devices and calls ``configure()`` as glance does. Extra keyword-only knobs:
``connector_factory``, ``device_owner``, ``client_factory``, ``lock_path``, ``timer``.

For glance_store's module-level API (``multi_backend``, ``backend``): ``global_conf`` (the
global CONF with ``Overrides`` undone at teardown, and the scheme maps restored) and
``datera_options(sim, lock_path)``. ``RedirectingConnector(path)``: os-brick's LOCAL connector
handing out another device (for ``connector_factory``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from glance_store import location
from os_brick.initiator.connectors.local import LocalConnector
from oslo_concurrency import opts as lock_opts
from oslo_config import cfg

from datera_glance.store import Store

StoreFactory = Callable[..., Store]

TEST_INITIATOR = "iqn.2026-11.org.datera-glance:test-host"


class RedirectingConnector(LocalConnector):
    """os-brick's LOCAL connector, but the device it hands out is ``path``."""

    def __init__(self, path: str) -> None:
        super().__init__("unused")
        self.path = path

    def connect_volume(self, connection_properties: dict[str, Any]) -> dict[str, Any]:
        info: dict[str, Any] = super().connect_volume({"device_path": self.path})
        return info


def make_conf(
    simulator: Any, backend: str | None, lock_path: str, options: dict[str, Any]
) -> cfg.ConfigOpts:
    """A glance-like ``ConfigOpts`` with the Datera options for ``simulator`` set."""
    conf = cfg.ConfigOpts()
    for group, opts in lock_opts.list_opts():
        conf.register_opts(opts, group=group)
    conf([], project="glance")
    conf.set_override("lock_path", lock_path, group="oslo_concurrency")
    cluster = getattr(simulator, "cluster", None)
    values: dict[str, Any] = {
        "datera_san_ip": simulator.host,
        "datera_san_port": simulator.port,
        "datera_san_login": getattr(cluster, "username", "admin"),
        "datera_san_password": getattr(cluster, "password", "password"),
        "datera_ssl": bool(getattr(simulator, "tls", False)),
        "datera_ssl_ca_file": getattr(simulator, "ca_file", None),
        "datera_connector": "local",
        "datera_initiator_name": TEST_INITIATOR,
        "datera_retry_deadline": 10.0,
        # Detach as soon as the last reader is done, so a test sees its records go; tests of
        # lingering attachments ask for it (attach_linger=...).
        "datera_attach_linger": 0,
    }
    for name, value in options.items():
        values[name if name.startswith("datera_") else f"datera_{name}"] = value
    conf.register_opts(Store.OPTIONS, group=backend or "glance_store")
    for name, value in values.items():
        conf.set_override(name, value, group=backend or "glance_store")
    return conf


@pytest.fixture
def store_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StoreFactory]:
    """Factory of configured Stores; their EDF sessions are closed at teardown."""
    made: list[Store] = []

    def make(
        simulator: Any,
        *,
        copier: Any = None,
        backend: str | None = "datera1",
        connector_factory: Any = None,
        device_owner: Any = None,
        client_factory: Any = None,
        lock_path: str | Path | None = None,
        timer: Any = None,
        **options: Any,
    ) -> Store:
        locks = str(lock_path or tmp_path_factory.mktemp("locks"))
        conf = make_conf(simulator, backend, locks, options)
        store = Store(
            conf,
            backend=backend,
            copier=copier,
            connector_factory=connector_factory,
            device_owner=device_owner,
            client_factory=client_factory,
            timer=timer,
        )
        store.configure(re_raise_bsc=False)
        made.append(store)
        return store

    try:
        yield make
    finally:
        for store in made:
            with contextlib.suppress(Exception):  # the simulator may already be gone
                store.close()


def datera_options(sim: Any, lock_path: str, **extra: Any) -> dict[str, Any]:
    """The Datera options for ``sim`` as glance-api.conf would set them (for ``Overrides``)."""
    return {
        "datera_san_ip": sim.host,
        "datera_san_port": sim.port,
        "datera_san_login": "admin",
        "datera_san_password": "password",
        "datera_ssl": False,
        "datera_connector": "local",
        "datera_initiator_name": TEST_INITIATOR,
        # As store_factory: tests that count attachments or records see them released at once.
        "datera_attach_linger": 0,
        **extra,
    }


class Overrides:
    """Overrides on the global CONF (glance_store's module-level API reads it), undone later."""

    def __init__(self, conf: cfg.ConfigOpts) -> None:
        self.conf = conf
        self.done: list[tuple[str, str | None]] = []

    def config(self, group: str | None = None, **values: Any) -> None:
        for name, value in values.items():
            self.conf.set_override(name, value, group=group)
            self.done.append((name, group))

    def undo(self) -> None:
        for name, group in reversed(self.done):
            self.conf.clear_override(name, group=group)


@pytest.fixture
def global_conf(tmp_path: Any) -> Iterator[Overrides]:
    """glance_store's global CONF (its module-level API reads it), and its scheme maps,
    restored at teardown."""
    conf = cfg.CONF
    if "enabled_backends" not in conf:
        conf.register_opt(cfg.DictOpt("enabled_backends"))
    overrides = Overrides(conf)
    saved = (dict(location.SCHEME_TO_CLS_MAP), dict(location.SCHEME_TO_CLS_BACKEND_MAP))
    try:
        overrides.config(lock_path=str(tmp_path / "locks"), group="oslo_concurrency")
        yield overrides
    finally:
        overrides.undo()
        location.SCHEME_TO_CLS_MAP.clear()
        location.SCHEME_TO_CLS_MAP.update(saved[0])
        location.SCHEME_TO_CLS_BACKEND_MAP.clear()
        location.SCHEME_TO_CLS_BACKEND_MAP.update(saved[1])


def close_clients(stores: list[Any]) -> None:
    for store in stores:
        if isinstance(store, Store):
            store.close()
