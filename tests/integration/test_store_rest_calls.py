"""The REST calls each Store operation makes: a fixed, small number, whatever the tenant holds.

The real Store and EDF client on the simulator, the client built through the store's
``client_factory`` with a ``RequestCounter`` (``datera_glance.edf``) as its ``on_request``:
every HTTP request the client sends (retries and logins included) is counted by method and
route template. A new call on any path, or a lookup that starts listing, fails here and not
only in a benchmark. docs/interfaces.md (Store) lists the same figures.
"""

from __future__ import annotations

import functools
import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from glance_store import location as glance_location
from oslo_utils import units

from datera_glance.edf import ClientConfig, EdfClient, RequestCounter
from datera_glance.simulator import Simulator
from datera_glance.store import Store, StoreLocation
from tests.plugins.store import StoreFactory

# What the first operation of a process adds: the login, and this host's initiator (looked
# up, then registered; attach.py keeps it for the process). Every add and get below is
# counted after a first add has paid these.
FIRST_CALL = {"PUT /login": 1}
FIRST_ATTACH = {"GET /initiators/:iqn": 1, "POST /initiators": 1}

LOOKUP = {"GET /app_instances/:ai": 1}  # GET /app_instances/OS-IMAGE-<id>: by name
ATTACH = {
    "GET /app_instances/:ai": 1,  # the app instance as it is now (admin state, CHAP)
    "GET /app_instances/:ai/storage_instances/:si/acl_policy": 1,
    "GET /app_instances/:ai/storage_instances/:si": 1,  # wait until available; its access
}
GET_SIZE = {**LOOKUP, "GET /app_instances/:ai/metadata": 1}
GET = {
    "GET /app_instances/:ai": 2,  # LOOKUP + ATTACH's
    "GET /app_instances/:ai/metadata": 1,
    "GET /app_instances/:ai/storage_instances/:si/acl_policy": 1,
    "GET /app_instances/:ai/storage_instances/:si": 1,
}
ADD = {
    "GET /system": 1,  # available capacity
    "GET /app_instances/:ai": 2,  # the leftover check (404) + ATTACH's
    "POST /app_instances": 1,
    "GET /app_instances/:ai/storage_instances/:si/acl_policy": 1,
    "PUT /app_instances/:ai/storage_instances/:si/acl_policy/initiators": 1,  # this host
    "GET /app_instances/:ai/storage_instances/:si": 1,
    "PUT /app_instances/:ai/metadata": 2,  # the upload record, then checksum and length
}
GROWTH = {  # per offline resize of an upload of unknown size
    "PUT /app_instances/:ai": 2,  # offline, online
    "PUT /app_instances/:ai/storage_instances/:si/volumes/:volume": 1,
    **ATTACH,
}
DELETE = {  # the metadata: is it glance's (datera_glance.ownership)?
    **LOOKUP,
    "GET /app_instances/:ai/metadata": 1,
    "PUT /app_instances/:ai": 1,
    "DELETE /app_instances/:ai": 1,
}


def plus(*counts: dict[str, int]) -> dict[str, int]:
    total: dict[str, int] = {}
    for count in counts:
        for key, n in count.items():
            total[key] = total.get(key, 0) + n
    return total


class Counted:
    """A Store whose EDF client reports every request to ``counter``."""

    def __init__(self, store: Store, counter: RequestCounter) -> None:
        self.store = store
        self.counter = counter

    def calls(self, operation: Callable[[], Any]) -> dict[str, int]:
        self.counter.reset()
        operation()
        return self.counter.counts

    def location(self, uri: str) -> glance_location.Location:
        return glance_location.Location(
            "datera", StoreLocation, self.store.conf, uri=uri, backend=self.store.backend_group
        )

    def add(self, data: Any, size: int) -> str:
        uri: str = self.store.add(str(uuid.uuid4()), data, size, "sha512")[0]
        return uri

    def read(self, uri: str, **kw: Any) -> bytes:
        chunks, _ = self.store.get(self.location(uri), **kw)
        return b"".join(chunks)


@pytest.fixture
def counted(simulator: Simulator, store_factory: StoreFactory) -> Iterator[Counted]:
    counter = RequestCounter()

    def client_factory(config: ClientConfig) -> EdfClient:
        return EdfClient(config, on_request=counter)

    yield Counted(store_factory(simulator, client_factory=client_factory), counter)
    left = [ai for ai in simulator.state()["app_instances"] if not ai["name"].startswith("seed-")]
    assert left == [], "the test left app instances"


def test_calls_per_operation(counted: Counted) -> None:
    data = os.urandom(3 * units.Mi + 17)
    first = counted.calls(lambda: counted.add(iter([data]), len(data)))
    assert first == plus(FIRST_CALL, FIRST_ATTACH, ADD)

    uri = ""

    def add_known() -> None:
        nonlocal uri
        uri = counted.add(iter([data]), len(data))

    assert counted.calls(add_known) == ADD
    assert counted.calls(lambda: counted.add(iter([data]), 0)) == ADD  # unknown, no growth
    assert counted.calls(lambda: counted.store.get_size(counted.location(uri))) == GET_SIZE
    assert counted.calls(lambda: counted.read(uri)) == GET
    ranged = counted.calls(lambda: counted.read(uri, offset=units.Mi, chunk_size=units.Mi))
    assert ranged == GET
    for image in counted.store._configured().client.list_app_instances("OS-IMAGE-"):
        loc = f"{uri.rsplit('/', 1)[0]}/{image.uuid}"
        assert (
            counted.calls(functools.partial(counted.store.delete, counted.location(loc))) == DELETE
        )


def test_a_process_whose_first_operation_is_a_read(
    simulator: Simulator, counted: Counted, store_factory: StoreFactory
) -> None:
    """A glance-api worker that reads before it ever uploads: its first metadata access asks
    ``GET /system`` once (the product version decides where metadata lives:
    ``int_ecosystem_data`` from 3.3, edf/client.py), besides the login; this host's initiator
    exists already, so its first attach only looks it up."""
    data = os.urandom(units.Mi + 5)
    uri = counted.add(iter([data]), len(data))
    counter = RequestCounter()
    fresh = Counted(
        store_factory(
            simulator, client_factory=lambda config: EdfClient(config, on_request=counter)
        ),
        counter,
    )
    first = fresh.calls(lambda: fresh.read(uri))
    assert first == plus(FIRST_CALL, {"GET /system": 1, "GET /initiators/:iqn": 1}, GET)
    assert fresh.calls(lambda: fresh.read(uri)) == GET
    counted.store.delete(counted.location(uri))


def test_calls_do_not_grow_with_the_tenant(simulator: Simulator, counted: Counted) -> None:
    """2,000 more app instances in the tenant change nothing: every lookup is one GET by
    name (``GET /app_instances/OS-IMAGE-<id>``), never the filtered listing."""
    data = os.urandom(units.Mi)
    counted.add(iter([data]), len(data))  # the process's first calls
    uri = ""

    def add() -> None:
        nonlocal uri
        uri = counted.add(iter([data]), len(data))

    simulator.set_capacity(3 * units.Ti)
    simulator.seed_app_instances(2000)  # seed-0 ... seed-1999, 1 GiB each
    assert counted.calls(add) == ADD
    assert counted.calls(lambda: counted.store.get_size(counted.location(uri))) == GET_SIZE
    assert counted.calls(lambda: counted.read(uri, chunk_size=units.Mi)) == GET
    assert counted.calls(lambda: counted.store.delete(counted.location(uri))) == DELETE
    first = counted.store._configured().client.list_app_instances("OS-IMAGE-")
    counted.store.delete(counted.location(f"{uri.rsplit('/', 1)[0]}/{first[0].uuid}"))


def test_calls_of_an_original_driver_image(simulator: Simulator, counted: Counted) -> None:
    """An ``OS-<id>`` app instance (Datera's original driver) is found by the same one GET."""
    image_id = str(uuid.uuid4())
    client = counted.store._configured().client
    ai = client.create_app_instance(f"OS-{image_id}", uuid=image_id, size_gib=1)
    client.put_metadata(ai.id, {"type": "image", "length": "0"})
    loc = counted.location(
        f"datera://{simulator.host}:{simulator.port}/app_instances/OS-{image_id}"
    )
    assert counted.calls(lambda: counted.store.get_size(loc)) == GET_SIZE
    assert counted.calls(lambda: counted.store.delete(loc)) == DELETE


@pytest.mark.slow
def test_calls_of_an_upload_that_grows(store_factory: StoreFactory, simulator: Simulator) -> None:
    """An upload of unknown size past its 1 GiB volume: one offline resize, six calls."""
    counter = RequestCounter()
    store = store_factory(
        simulator,
        skip_zero_blocks=True,  # the zeros are hashed, not written
        client_factory=lambda config: EdfClient(config, on_request=counter),
    )
    counted = Counted(store, counter)
    zeros = bytes(4 * units.Mi)
    counted.add(iter([zeros]), len(zeros))  # the process's first calls
    total = units.Gi + 2 * units.Mi
    uri = ""

    def add() -> None:
        nonlocal uri
        uri = counted.add((zeros for _ in range(total // len(zeros) + 1)), 0)

    assert counted.calls(add) == plus(ADD, GROWTH)
    assert sorted(ai["size_gib"] for ai in simulator.state()["app_instances"]) == [1, 2]
    for image in store._configured().client.list_app_instances("OS-IMAGE-"):
        store.delete(counted.location(f"{uri.rsplit('/', 1)[0]}/{image.uuid}"))
