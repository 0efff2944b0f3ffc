"""Deleting an image that Cinder volumes were cloned from (file-media simulator).

EDF lets a clone's source be deleted and the clones live on: Datera's Cinder driver
(Datera/cinder-driver ``datera_api22.py`` ``_clone_image_2_2``) deletes a stale cached image
volume, which its clones were made from, with ``_delete_volume_2_2`` (offline, then
``ai.delete(force=True)``), handling only NotFound; and its ``delete_volume`` never reports a
volume busy because of clones. So glance's delete of such an image succeeds, and the clone keeps
the image's bytes. If a cluster refuses the delete (409), glance hears ``InUseByStore`` (its
409, ``glance/api/v2/images.py`` ``delete``) and the image stays whole and readable.
"""

from __future__ import annotations

import hashlib
import io
import os
import uuid

import pytest
from glance_store import exceptions
from glance_store import location as glance_location
from oslo_utils import units

from datera_glance.simulator import Simulator
from datera_glance.store import Store, StoreLocation
from tests.plugins.simulator import Edf
from tests.plugins.store import StoreFactory


def _locate(store: Store, uri: str) -> glance_location.Location:
    return glance_location.Location(
        "datera", StoreLocation, store.conf, uri=uri, backend=store.backend_group
    )


def _clone(edf: Edf, image_id: str, name: str) -> dict[str, object]:
    """What Datera's Cinder driver does: find the image by name, clone its volume."""
    found = edf.call("GET", "/app_instances", params={"filter": f"match(name,.*{image_id}.*)"})
    (ai,) = found["data"]
    body = {
        "name": name,
        "create_mode": "openstack",
        "clone_volume_src": {"path": ai["storage_instances"][0]["volumes"][0]["path"]},
    }
    clone: dict[str, object] = edf.call("POST", "/app_instances", json=body)["data"]
    return clone


def _device(ai: dict[str, object]) -> str:
    return ai["storage_instances"][0]["access"]["device_path"]  # type: ignore[index]


@pytest.fixture
def edf(simulator: Simulator) -> object:
    client = Edf(simulator)
    yield client
    client.close()


def test_delete_of_an_image_with_clones_succeeds_and_the_clones_keep_its_bytes(
    simulator: Simulator, store_factory: StoreFactory, edf: Edf
) -> None:
    store = store_factory(simulator)
    data = os.urandom(2 * units.Mi + 7)
    image_id = str(uuid.uuid4())
    uri, *_ = store.add(image_id, io.BytesIO(data), len(data), "sha256")
    clones = [_clone(edf, image_id, f"OS-{uuid.uuid4()}") for _ in range(2)]

    store.delete(_locate(store, uri))

    with pytest.raises(exceptions.NotFound):
        store.get(_locate(store, uri))
    names = sorted(ai["name"] for ai in edf.call("GET", "/app_instances")["data"])
    assert names == sorted(str(c["name"]) for c in clones)
    for clone in clones:
        with open(_device(clone), "rb") as f:
            assert hashlib.sha256(f.read(len(data))).digest() == hashlib.sha256(data).digest()


def test_delete_refused_by_the_cluster_is_in_use_and_leaves_the_image_whole(
    simulator: Simulator, store_factory: StoreFactory, edf: Edf
) -> None:
    store = store_factory(simulator)
    data = os.urandom(units.Mi + 3)
    image_id = str(uuid.uuid4())
    uri, *_ = store.add(image_id, io.BytesIO(data), len(data), "sha256")
    _clone(edf, image_id, f"OS-{uuid.uuid4()}")
    simulator.add_fault("DELETE", r"^/app_instances/[^/]+$", status=409, message="in use")

    with pytest.raises(exceptions.InUseByStore):
        store.delete(_locate(store, uri))

    chunks, size = store.get(_locate(store, uri))
    assert (b"".join(chunks), size) == (data, len(data))
    store.delete(_locate(store, uri))  # once the cluster agrees
    with pytest.raises(exceptions.NotFound):
        store.get(_locate(store, uri))
