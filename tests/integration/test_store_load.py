"""Load through one Store: 16 concurrent adds, then 32 concurrent gets, of mixed sizes.

The real Store on the loop simulator (in this process), as one glance-api worker holds it for
all its threads. Every checksum is checked against hashlib's over the same stream; the
process's peak RSS and open file descriptors are measured and bounded, and what the load
opened is closed again afterwards. The figures are printed (``pytest -s``).
"""

from __future__ import annotations

import hashlib
import os
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from glance_store import location as glance_location
from oslo_utils import units

from datera_glance.simulator import Simulator
from datera_glance.store import Store, StoreLocation
from tests.plugins.core import Usage
from tests.plugins.glance import digests, pattern_stream
from tests.plugins.store import StoreFactory

pytestmark = [pytest.mark.root, pytest.mark.slow]

ADDS = 16
GETS = 32
# Mixed sizes: below a page, around the 4 MiB io buffer, and up to 48 MiB; unaligned ones.
SIZES = [
    1, 4095, 64 * units.Ki + 1, units.Mi, 3 * units.Mi + 7, 4 * units.Mi, 4 * units.Mi + 1,
    8 * units.Mi - 1, 10 * units.Mi, 12 * units.Mi + 5, 16 * units.Mi, 20 * units.Mi + 3,
    24 * units.Mi, 32 * units.Mi - 4096, 40 * units.Mi + 9, 48 * units.Mi,
]  # fmt: skip


class Stream:
    """``read(n)`` over ``pattern_stream(size, seed)``: glance's request body."""

    def __init__(self, size: int, seed: int) -> None:
        self._pieces: Iterator[bytes] = pattern_stream(size, seed)
        self._rest = b""

    def read(self, n: int = -1) -> bytes:
        while len(self._rest) < n or n < 0:
            piece = next(self._pieces, None)
            if piece is None:
                break
            self._rest += piece
        out, self._rest = (self._rest, b"") if n < 0 else (self._rest[:n], self._rest[n:])
        return out


def test_16_adds_then_32_gets_through_one_store(
    loop_simulator: Simulator, store_factory: StoreFactory
) -> None:
    store: Store = store_factory(loop_simulator)
    settings = store.settings
    expected = {seed: digests(pattern_stream(size, seed)) for seed, size in enumerate(SIZES)}
    # The process's first login and initiator, outside the measurement.
    warm = store.add(str(uuid.uuid4()), Stream(1, 99), 1, "sha512")[0]
    start = threading.Barrier(ADDS)

    def add(seed: int) -> tuple[int, str]:
        size = SIZES[seed]
        start.wait()
        known = size if seed % 2 else 0  # half of them of unknown size, as a chunked upload
        uri, written, md5, sha512, _ = store.add(
            str(uuid.uuid4()), Stream(size, seed), known, "sha512"
        )
        assert (md5, sha512, written) == expected[seed]
        return seed, uri

    def location(uri: str) -> glance_location.Location:
        return glance_location.Location(
            "datera", StoreLocation, store.conf, uri=uri, backend=store.backend_group
        )

    def get(item: tuple[int, str]) -> bool:
        seed, uri = item
        chunks, size = store.get(location(uri))
        md5 = hashlib.md5()
        for chunk in chunks:
            md5.update(chunk)
        return (md5.hexdigest(), size) == (expected[seed][0], SIZES[seed])

    me = os.getpid()
    with Usage([me]) as adding, ThreadPoolExecutor(ADDS) as pool:
        added = list(pool.map(add, range(ADDS)))
    with Usage([me]) as getting, ThreadPoolExecutor(GETS) as pool:
        assert all(pool.map(get, added + added))  # each image read twice at once
    for _seed, uri in [*added, (0, warm)]:
        store.delete(location(uri))
    after = Usage.fds(me)
    print(f"\n{ADDS} adds: {adding.report()}\n{GETS} gets: {getting.report()}; fds after {after}")

    buffers = (settings.io_depth + 2) * settings.io_buffer_size  # one transfer's, at most
    assert adding.growth(me) <= ADDS * buffers + 256 * units.Mi
    assert getting.growth(me) <= GETS * buffers + 256 * units.Mi
    # Each transfer holds its device open, plus HTTP connections (client and simulator ends).
    assert adding.peak_fds[me] <= adding.start_fds[me] + 4 * ADDS + 64
    assert getting.peak_fds[me] <= getting.start_fds[me] + 4 * GETS + 64
    assert after <= adding.start_fds[me] + 24, "descriptors left open after the load"
    state = loop_simulator.state()
    assert state["app_instances"] == [] and state["loop_devices"] == []
    assert not list(Path(settings.lock_path).glob("datera-glance-attach-*.json"))
