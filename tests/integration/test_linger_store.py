"""A boot storm from one image attaches once: the Store with ``datera_attach_linger``.

The real Store, EDF client and os-brick LOCAL connector on the simulator, with counting
wrappers around the connector and the HTTP session and a timer the test fires by hand.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import requests
from glance_store import location as glance_location
from os_brick.initiator.connectors.local import LocalConnector
from oslo_utils import units

from datera_glance.edf import ClientConfig, EdfClient
from datera_glance.simulator import Simulator
from datera_glance.store import Store, StoreLocation
from tests.plugins.store import StoreFactory
from tests.unit.test_attach_linger import ManualTimers


class Log:
    """What the store did, in order: ("connect"|"disconnect", path) and (METHOD, url path)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    def count(self, kind: str) -> int:
        return sum(1 for e in self.events if e[0] == kind)

    def rest_since(self, start: int) -> list[tuple[str, str]]:
        return [e for e in self.events[start:] if e[0] not in ("connect", "disconnect")]


class CountingSession(requests.Session):
    log: Log

    def request(self, method: str | bytes, url: str | bytes, *a: Any, **kw: Any) -> Any:
        path = str(url).split("//", 1)[-1].split("/", 1)[-1].split("?", 1)[0]
        self.log.events.append((str(method), "/" + path.split("/", 1)[-1]))
        return super().request(method, url, *a, **kw)


class CountingConnector(LocalConnector):
    log: Log

    def connect_volume(self, props: dict[str, Any]) -> dict[str, Any]:
        self.log.events.append(("connect", props["device_path"]))
        result: dict[str, Any] = super().connect_volume(props)
        return result

    def disconnect_volume(self, props: dict[str, Any], info: dict[str, Any], **kw: Any) -> None:
        self.log.events.append(("disconnect", info["path"]))
        super().disconnect_volume(props, info, **kw)


@pytest.fixture
def counted(simulator: Simulator, store_factory: StoreFactory) -> tuple[Store, Log, ManualTimers]:
    log, timers = Log(), ManualTimers()

    def client_factory(config: ClientConfig) -> EdfClient:
        session = CountingSession()
        session.log = log
        return EdfClient(config, session=session)

    def connector_factory(protocol: str, root_helper: str) -> LocalConnector:
        conn = CountingConnector(root_helper)
        conn.log = log
        return conn

    store = store_factory(
        simulator,
        attach_linger=30,
        client_factory=client_factory,
        connector_factory=connector_factory,
        timer=timers,
    )
    return store, log, timers


def locate(store: Store, uri: str) -> glance_location.Location:
    return glance_location.Location(
        "datera", StoreLocation, store.conf, uri=uri, backend=store.backend_group
    )


def read(store: Store, uri: str, offset: int, length: int) -> bytes:
    chunks, _ = store.get(locate(store, uri), offset=offset, chunk_size=length)
    return b"".join(chunks)


def test_twenty_back_to_back_gets_attach_once(
    counted: tuple[Store, Log, ManualTimers],
) -> None:
    store, log, timers = counted
    data = os.urandom(24 * units.Mi)
    uri = store.add(str(uuid.uuid4()), iter([data]), len(data), "sha512")[0]
    assert log.count("connect") == log.count("disconnect") == 1  # the upload's own, no linger

    start = len(log.events)
    for i in range(20):
        assert read(store, uri, i * units.Mi, units.Mi) == data[i * units.Mi : (i + 1) * units.Mi]
    assert log.count("connect") == 2 and log.count("disconnect") == 1  # one attach for 20
    [timer] = timers.live()
    assert timer.delay == 30

    # delete detaches the lingering attachment before the app instance goes offline
    mark = len(log.events)
    store.delete(locate(store, uri))
    kinds = [kind for kind, _ in log.events[mark:]]
    assert "disconnect" in kinds and "PUT" in kinds, kinds
    assert kinds.index("disconnect") < kinds.index("PUT"), kinds  # PUT: admin_state offline
    timer.fire()  # cancelled by the delete; a late firing finds nothing
    assert log.count("disconnect") == 2
    assert log.rest_since(start)  # (the REST calls themselves are pinned below)


def test_rest_calls_of_a_cold_and_a_lingering_get(
    counted: tuple[Store, Log, ManualTimers],
) -> None:
    store, log, timers = counted
    data = os.urandom(3 * units.Mi)
    uri = store.add(str(uuid.uuid4()), iter([data]), len(data), "sha512")[0]

    def calls(fn: Callable[[], Any]) -> list[str]:
        start = len(log.events)
        fn()
        return [f"{m} {p.split('/app_instances/')[-1].split('/', 1)[-1]}"
                for m, p in log.rest_since(start)]  # fmt: skip

    size_calls = calls(lambda: store.get_size(locate(store, uri)))
    cold = calls(lambda: read(store, uri, 0, units.Mi))
    lingering = calls(lambda: read(store, uri, units.Mi, units.Mi))
    assert log.count("connect") == 2  # the upload's, then the cold get's
    # A lingering get makes only the lookups get_size makes: no attach calls at all.
    assert lingering == size_calls
    assert len(cold) > len(lingering)
    assert set(lingering) < set(cold)
    print("get_size", size_calls, "cold get", cold, "lingering get", lingering, sep="\n")
    store.close()  # what glance-api's exit does: nothing of this process lingers
    assert log.count("disconnect") == 2
    assert timers.live() == []
    # (the image stays on this test's own simulator, which goes with it)
