"""Uploads of unknown size end on the smallest volume that holds them.

Why the volume may not end larger than the image's size in whole GiB, and why that rules out
growing by more than needed and trimming afterwards:

- EDF cannot shrink a volume. The v2.1 schema (``PUT .../volumes/:volume_name``, ``size``:
  "Provisioned storage capacity in GiB", 1-32768) states no shrink rule, but Datera's own
  Cinder driver never asks for one: ``_extend_volume_2_1`` / ``_extend_volume_2_2``
  (Datera/cinder-driver, ``src/cinder/volume/drivers/datera/datera_api21.py`` and
  ``datera_api22.py``) return early when the new size is not larger, and resize only inside
  ``_offline_flip`` (offline, resize, online). dfs-sdk (Datera/python-sdk) is generated from
  the schema and adds no resize semantics of its own.
- The same driver's fast image clone (``_clone_image_2_2``) clones the image's app instance
  (the clone has the source's size) and then sets the size of the volume the user asked for:
  a source larger than that is a shrink, so the clone fails.
- glance_store's own Cinder store does the same for the same reason
  (``glance_store/_drivers/cinder/store.py``, ``_call_offline_extend``: ``size_gb += 1``,
  "resize-before-write for each GB"); only its RBD store, whose images can shrink, grows by
  doubling and trims at the end.

The simulator refuses a shrink and an online resize, like EDF; these tests check that too.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from glance_store import location as glance_location
from oslo_utils import units

from datera_glance.edf import ClientConfig, EdfClient
from datera_glance.simulator import Simulator
from datera_glance.store import Store, StoreLocation
from tests.plugins.simulator import Edf
from tests.plugins.store import StoreFactory


class ResizeCountingClient(EdfClient):
    """The real client, counting the volume resizes it asks for."""

    resizes: list[int]

    def resize_volume(self, ai: Any, size_gib: int, **kw: Any) -> Any:
        self.resizes.append(size_gib)
        return super().resize_volume(ai, size_gib, **kw)


def counting_store(
    store_factory: StoreFactory, simulator: Simulator, **options: Any
) -> tuple[Store, list[int]]:
    resizes: list[int] = []

    def factory(config: ClientConfig) -> EdfClient:
        client = ResizeCountingClient(config)
        client.resizes = resizes
        return client

    store = store_factory(simulator, client_factory=factory, skip_zero_blocks=True, **options)
    return store, resizes


def sparse(total: int, mark: bytes) -> Iterator[bytes]:
    """``total`` bytes: zeros, then ``mark`` as the last bytes (so the tail is checked)."""
    zero = bytes(4 * units.Mi)
    pos, end = 0, total - len(mark)
    while pos < end:
        n = min(len(zero), end - pos)
        yield zero[:n]
        pos += n
    yield mark


def final_size(simulator: Simulator, image_id: str) -> int:
    [ai] = [a for a in simulator.state()["app_instances"] if a["uuid"] == image_id]
    size: int = ai["size_gib"]
    return size


@pytest.mark.slow
@pytest.mark.parametrize(
    ("total", "step", "expected_gib", "expected_resizes"),
    [
        (2 * units.Gi + units.Gi // 2, units.Gi, 3, [2, 3]),  # 2.5 GiB: 1 -> 2 -> 3, not 4
        (2 * units.Gi, units.Gi, 2, [2]),  # an exact fit does not grow once more
        (2 * units.Gi + units.Gi // 2, 2 * units.Gi, 3, [3]),  # a 2 GiB step: 1 -> 3
    ],
    ids=["2.5GiB", "2GiB-exact", "2.5GiB-step2"],
)
def test_unknown_size_ends_on_the_smallest_volume(
    simulator: Simulator,
    store_factory: StoreFactory,
    total: int,
    step: int,
    expected_gib: int,
    expected_resizes: list[int],
) -> None:
    store, resizes = counting_store(store_factory, simulator, chunk_size=step)
    mark = os.urandom(units.Mi)
    image_id = str(uuid.uuid4())
    uri, written, _md5, _mh, _ = store.add(image_id, iter(sparse(total, mark)), 0, "md5")
    assert written == total
    assert resizes == expected_resizes
    assert final_size(simulator, image_id) == expected_gib
    loc = glance_location.Location(
        "datera", StoreLocation, store.conf, uri=uri, backend=store.backend_group
    )
    assert store.get_size(loc) == total
    chunks, _ = store.get(loc, offset=total - len(mark))
    assert b"".join(chunks) == mark
    store.delete(loc)


def test_edf_refuses_to_shrink_or_resize_online(edf: Edf) -> None:
    ai = edf.create_ai("OS-IMAGE-shrink", size=2)["data"]
    volume = f"/app_instances/{ai['id']}/storage_instances/storage-1/volumes/volume-1"
    edf.call("PUT", volume, json={"size": 3}, expect=400)  # online: not resized
    edf.call("PUT", f"/app_instances/{ai['id']}", json={"admin_state": "offline", "force": True})
    edf.call("PUT", volume, json={"size": 1}, expect=400)  # offline, smaller: not shrunk
    assert edf.call("GET", volume)["data"]["size"] == 2
    assert edf.call("PUT", volume, json={"size": 3})["data"]["size"] == 3
