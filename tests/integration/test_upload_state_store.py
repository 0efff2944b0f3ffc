"""``Store.add``'s upload-state hook: the record exists while the data is written, the final
metadata carries the multihash, and a failure to write either rolls the upload back."""

from __future__ import annotations

import hashlib
import io
import os
import uuid
from typing import Any

import pytest
from glance_store import exceptions

from datera_glance import upload_state
from datera_glance.simulator import Simulator
from tests.plugins.store import StoreFactory


class Watching:
    """An image source (``read`` only, like glance's) that looks at the cluster when the Store
    reads its first bytes."""

    def __init__(self, data: bytes, sim: Simulator) -> None:
        self.buf = io.BytesIO(data)
        self.sim = sim
        self.seen: list[dict[str, Any]] = []

    def read(self, n: int = -1) -> bytes:
        if not self.seen:
            self.seen = [dict(ai["metadata"]) for ai in self.sim.state()["app_instances"]]
        return self.buf.read(n)


def test_record_while_writing_then_multihash(
    simulator: Simulator, store_factory: StoreFactory
) -> None:
    store = store_factory(simulator)
    data = os.urandom(300_000)
    source = Watching(data, simulator)
    store.add(str(uuid.uuid4()), source, len(data), "sha256")
    [during] = source.seen
    assert during[upload_state.PID] == str(os.getpid())
    assert during[upload_state.HOST] == upload_state.host_name()
    assert "length" not in during and "type" not in during
    [ai] = simulator.state()["app_instances"]
    final = ai["metadata"]
    assert final[upload_state.MULTIHASH_ALGO] == "sha256"
    assert final[upload_state.MULTIHASH] == hashlib.sha256(data).hexdigest()
    assert final["checksum"] == hashlib.md5(data).hexdigest()
    assert upload_state.UploadRecord.from_metadata(final) is not None


@pytest.mark.parametrize("skip", [0, 1], ids=["record", "final-metadata"])
def test_metadata_failure_rolls_back(
    simulator: Simulator, store_factory: StoreFactory, skip: int
) -> None:
    store = store_factory(simulator)
    simulator.add_fault("PUT", r"/app_instances/[^/]+/metadata$", status=400, skip=skip)
    with pytest.raises(exceptions.BackendException):
        store.add(str(uuid.uuid4()), io.BytesIO(b"x" * 5000), 5000, "sha512")
    assert simulator.state()["app_instances"] == []
