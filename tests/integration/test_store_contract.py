"""The Store contract suite: the real Store on the EDF simulator's loop backend.

Every test runs on both copier cores (``core``), attaches through os-brick's real LOCAL
connector, and ends with the simulator holding no app instance, no loop device and no attach
record: each test deletes what it stored, and rollbacks are checked right where they happen.
"""

from __future__ import annotations

import hashlib
import io
import multiprocessing
import os
import pathlib
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from glance_store import exceptions
from glance_store import location as glance_location
from oslo_utils import units

from datera_glance import chunkio, ownership, upload_state
from datera_glance.simulator import Simulator
from datera_glance.store import Store, StoreLocation
from tests.plugins.store import RedirectingConnector, StoreFactory, make_conf

pytestmark = pytest.mark.root


# -- helpers --------------------------------------------------------------------------------


def new_id() -> str:
    return str(uuid.uuid4())


def locate(store: Store, uri: str) -> glance_location.Location:
    return glance_location.Location(
        "datera", StoreLocation, store.conf, uri=uri, backend=store.backend_group
    )


def read_all(store: Store, uri: str, **kw: Any) -> tuple[bytes, int]:
    it, size = store.get(locate(store, uri), **kw)
    return b"".join(it), size


class Source:
    """A glance-like reader: ``read(n)`` over ``data``, optionally failing after ``fail_at``."""

    def __init__(self, data: bytes, fail_at: int | None = None, exc: BaseException | None = None):
        self.buf = io.BytesIO(data)
        self.fail_at = fail_at
        self.exc = exc or OSError("error during read(4194304) on wsgi.input")
        self.max_read = 0

    def read(self, n: int = -1) -> bytes:
        self.max_read = max(self.max_read, n)
        if self.fail_at is not None and self.buf.tell() >= self.fail_at:
            raise self.exc
        return self.buf.read(n)


def sim_ais(sim: Simulator) -> list[dict[str, Any]]:
    return list(sim.state()["app_instances"])


def assert_gone(sim: Simulator, store: Store, image_id: str) -> None:
    """No app instance, loop device or attach record of ``image_id`` is left."""
    state = sim.state()
    assert [ai for ai in state["app_instances"] if image_id in ai["name"]] == []
    assert state["loop_devices"] == []
    lock_path = store._configured().settings.lock_path
    assert not list(pathlib.Path(lock_path).glob("*.json"))


@pytest.fixture
def sim(loop_simulator: Simulator) -> Iterator[Simulator]:
    """The loop simulator; at teardown nothing of any image may be left on it."""
    yield loop_simulator
    state = loop_simulator.state()
    assert state["app_instances"] == [], "a test left app instances behind"
    assert state["loop_devices"] == [], "a test left loop devices behind"


@pytest.fixture
def store(sim: Simulator, core: chunkio.Copier, store_factory: StoreFactory) -> Store:
    return store_factory(sim, copier=core)


@pytest.fixture
def rng() -> Callable[[int], bytes]:
    return os.urandom


# -- round trips ----------------------------------------------------------------------------


@pytest.mark.parametrize("size", [1, 4095, 5 * units.Mi + 123])
def test_round_trip_known_size(
    sim: Simulator, store: Store, size: int, rng: Callable[[int], bytes]
) -> None:
    data = rng(size)
    image_id = new_id()
    uri, written, md5, multihash, meta = store.add(image_id, Source(data), size, "sha512")
    assert written == size
    assert md5 == hashlib.md5(data).hexdigest()
    assert multihash == hashlib.sha512(data).hexdigest()
    assert meta == {"store": "datera1"}
    assert uri == f"datera://{sim.host}:{sim.port}/app_instances/{image_id}"

    [ai] = sim_ais(sim)
    assert ai["name"] == f"OS-IMAGE-{image_id}" and ai["uuid"] == image_id
    assert ai["size_gib"] == 1
    metadata = {k: str(v) for k, v in ai["metadata"].items()}
    # the upload-state record (datera_glance.upload_state) stays beside the image's keys
    for key in (upload_state.HOST, upload_state.PID, upload_state.STARTED_AT):
        assert metadata.pop(key)
    metadata.pop(upload_state.PROCESS_START)
    metadata.pop(upload_state.HEARTBEAT)
    assert metadata == {
        "checksum": md5,
        "length": str(size),
        "type": "image",
        "multihash_algo": "sha512",
        "multihash": multihash,
    }
    # complete images stay online with this host's ACL entry (other hosts may read them)
    assert ai["admin_state"] == "online" and len(ai["acl"]) == 1

    got, reported = read_all(store, uri)
    assert got == data and reported == size
    assert store.get_size(locate(store, uri)) == size

    store.delete(locate(store, uri))
    assert_gone(sim, store, image_id)
    with pytest.raises(exceptions.NotFound):
        store.get(locate(store, uri))
    with pytest.raises(exceptions.NotFound):
        store.get_size(locate(store, uri))
    with pytest.raises(exceptions.NotFound):
        store.delete(locate(store, uri))


def test_ranges_are_exact(sim: Simulator, store: Store, rng: Callable[[int], bytes]) -> None:
    size = 9 * units.Mi + 17
    data = rng(size)
    uri = store.add(new_id(), Source(data), size, "sha256")[0]
    cases = [
        (0, 1),
        (100, 1000),
        (4 * units.Mi - 5, 10),  # across a buffer boundary
        (511, 4097),  # unaligned both ends
        (size - 10, 10),  # glance's bytes=-10
        (size - 1, None),
        (3 * units.Mi, None),
        (0, size),
    ]
    for offset, chunk in cases:
        got, reported = read_all(store, uri, offset=offset, chunk_size=chunk)
        want = data[offset : offset + chunk] if chunk else data[offset:]
        assert got == want, (offset, chunk)
        assert reported == (chunk or size - offset)
    # pieces are at most the configured buffer size (glance sends them as they come)
    it, _ = store.get(locate(store, uri))
    assert max(len(p) for p in it) <= store.READ_CHUNKSIZE
    store.delete(locate(store, uri))


def test_abandoned_download_detaches(
    sim: Simulator, store: Store, rng: Callable[[int], bytes]
) -> None:
    data = rng(12 * units.Mi)
    image_id = new_id()
    uri = store.add(image_id, Source(data), len(data), "sha512")[0]
    it, _ = store.get(locate(store, uri))
    first = next(iter(it))
    assert data.startswith(first)
    lock_path = pathlib.Path(store._configured().settings.lock_path)
    assert list(lock_path.glob("*.json"))  # attached while the client reads
    it.close()  # what uwsgi does when the client goes away
    assert not list(lock_path.glob("*.json"))
    store.delete(locate(store, uri))
    assert_gone(sim, store, image_id)


def test_unknown_size_small(sim: Simulator, store: Store, rng: Callable[[int], bytes]) -> None:
    data = rng(3 * units.Mi + 1)
    image_id = new_id()
    uri, written, md5, _mh, _ = store.add(image_id, Source(data), 0, "sha512")
    assert written == len(data) and md5 == hashlib.md5(data).hexdigest()
    [ai] = sim_ais(sim)
    assert ai["size_gib"] == 1
    assert read_all(store, uri)[0] == data
    store.delete(locate(store, uri))
    assert_gone(sim, store, image_id)


class SparseStream:
    """``total`` bytes, zero except random 1 MiB marks at ``marks``; iterable of chunks."""

    def __init__(self, total: int, marks: list[int]) -> None:
        self.total = total
        self.marks = {m: os.urandom(units.Mi) for m in marks}
        self.zero = bytes(4 * units.Mi)

    def pieces(self) -> Iterator[bytes]:
        pos = 0
        for mark in sorted(self.marks):
            while pos < mark:
                n = min(len(self.zero), mark - pos)
                yield self.zero[:n]
                pos += n
            yield self.marks[mark]
            pos += units.Mi
        while pos < self.total:
            n = min(len(self.zero), self.total - pos)
            yield self.zero[:n]
            pos += n

    def __iter__(self) -> Iterator[bytes]:
        return self.pieces()


@pytest.fixture(scope="module")
def sparse_stream() -> tuple[SparseStream, str]:
    """2 GiB + a bit, mostly zeros with random marks around the growth boundaries, and its
    md5 (computed once: hashing 2 GiB costs seconds on these shared machines)."""
    total = 2 * units.Gi + 3 * units.Mi + 5
    stream = SparseStream(total, [0, units.Gi - units.Mi // 2, 2 * units.Gi - 3, total - units.Mi])
    md5 = hashlib.md5()
    for piece in stream:
        md5.update(piece)
    return stream, md5.hexdigest()


@pytest.mark.slow
def test_unknown_size_grows_several_times(
    sim: Simulator,
    core: chunkio.Copier,
    store_factory: StoreFactory,
    sparse_stream: tuple[SparseStream, str],
) -> None:
    # 1 GiB to start, steps of 1 GiB: two growths (1 -> 2 -> 3 GiB, the smallest whole GiB
    # that holds the image; tests/integration/test_unknown_size.py says why). Zero blocks are
    # hashed but not written; md5 doubles as the multihash to keep the hashing cost down.
    store = store_factory(sim, copier=core, skip_zero_blocks=True, chunk_size=1)
    stream, md5 = sparse_stream
    image_id = new_id()
    uri, written, got_md5, got_multihash, _ = store.add(image_id, iter(stream), 0, "md5")
    assert (written, got_md5, got_multihash) == (stream.total, md5, md5)
    [ai] = sim_ais(sim)
    assert ai["size_gib"] == 3
    assert store.get_size(locate(store, uri)) == stream.total
    for mark, blob in stream.marks.items():
        got, _ = read_all(store, uri, offset=mark, chunk_size=units.Mi)
        assert got == blob, mark
    got, _ = read_all(store, uri, offset=units.Gi + 2 * units.Mi + 5, chunk_size=units.Mi)
    assert got == bytes(units.Mi)
    store.delete(locate(store, uri))
    assert_gone(sim, store, image_id)


@pytest.mark.slow
def test_growth_refused_by_edf_rolls_back(
    sim: Simulator, core: chunkio.Copier, store_factory: StoreFactory
) -> None:
    # The first growth (at 1 GiB) fails: the cluster has no room for the bigger volume.
    store = store_factory(sim, copier=core, skip_zero_blocks=True)
    stream = SparseStream(units.Gi + 2 * units.Mi, [0, units.Gi])
    sim.add_fault(
        "PUT", r"/volumes/volume-1$", status=422, name="InsufficientCapacityError", count=None
    )
    image_id = new_id()
    try:
        with pytest.raises(exceptions.StorageFull):
            store.add(image_id, iter(stream), 0, "md5")
    finally:
        sim.clear_faults()
    assert_gone(sim, store, image_id)


# -- rollback on every failure path ---------------------------------------------------------


def test_client_disconnect_rolls_back(
    sim: Simulator, store: Store, rng: Callable[[int], bytes]
) -> None:
    image_id = new_id()
    source = Source(rng(20 * units.Mi), fail_at=9 * units.Mi)
    with pytest.raises(OSError, match=r"wsgi\.input"):
        store.add(image_id, source, 20 * units.Mi, "sha512")
    assert source.max_read <= store.WRITE_CHUNKSIZE
    assert_gone(sim, store, image_id)


def test_client_disconnect_rolls_back_unknown_size(
    sim: Simulator, store: Store, rng: Callable[[int], bytes]
) -> None:
    image_id = new_id()
    with pytest.raises(OSError, match=r"wsgi\.input"):
        store.add(image_id, Source(rng(6 * units.Mi), fail_at=5 * units.Mi), 0, "sha512")
    assert_gone(sim, store, image_id)


@pytest.mark.parametrize(
    ("sent", "declared"), [(3 * units.Mi, 3 * units.Mi + 1), (3 * units.Mi + 1, 3 * units.Mi)]
)
def test_size_mismatch_is_invalid_and_rolls_back(
    sim: Simulator, store: Store, sent: int, declared: int, rng: Callable[[int], bytes]
) -> None:
    image_id = new_id()
    with pytest.raises(exceptions.Invalid):
        store.add(image_id, Source(rng(sent)), declared, "sha512")
    assert_gone(sim, store, image_id)


class Verifier:
    def __init__(self, fail_after: int | None = None) -> None:
        self.seen = hashlib.sha256()
        self.count = 0
        self.fail_after = fail_after

    def update(self, data: bytes) -> None:
        self.count += len(data)
        if self.fail_after is not None and self.count > self.fail_after:
            raise ValueError("signature verification failed")
        self.seen.update(data)


def test_verifier_sees_exactly_the_image(
    sim: Simulator, store: Store, rng: Callable[[int], bytes]
) -> None:
    data = rng(6 * units.Mi + 7)
    verifier = Verifier()
    uri = store.add(new_id(), Source(data), len(data), "sha512", verifier=verifier)[0]
    assert verifier.seen.hexdigest() == hashlib.sha256(data).hexdigest()
    store.delete(locate(store, uri))


def test_verifier_failure_rolls_back(
    sim: Simulator, store: Store, rng: Callable[[int], bytes]
) -> None:
    image_id = new_id()
    with pytest.raises(ValueError, match="signature"):
        store.add(
            image_id,
            Source(rng(10 * units.Mi)),
            10 * units.Mi,
            "sha512",
            verifier=Verifier(5 * units.Mi),
        )
    assert_gone(sim, store, image_id)


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("PUT", r"/app_instances/[^/]+/metadata$", 400),  # after the data is written
        ("PUT", r"/acl_policy(/initiators)?$", 403),  # while attaching
        ("POST", r"^/app_instances$", 500),  # creating
    ],
)
def test_edf_error_rolls_back(
    sim: Simulator,
    store: Store,
    method: str,
    path: str,
    status: int,
    rng: Callable[[int], bytes],
) -> None:
    image_id = new_id()
    sim.add_fault(method, path, status=status, count=None)
    try:
        with pytest.raises(exceptions.BackendException):
            store.add(image_id, Source(rng(2 * units.Mi)), 2 * units.Mi, "sha512")
    finally:
        sim.clear_faults()
    assert_gone(sim, store, image_id)


def test_edf_down_during_upload_rolls_back(
    sim: Simulator, core: chunkio.Copier, store_factory: StoreFactory, rng: Callable[[int], bytes]
) -> None:
    store = store_factory(sim, copier=core, retry_deadline=1.0)
    image_id = new_id()
    sim.add_fault("PUT", r"/metadata$", drop=True, count=None)
    try:
        with pytest.raises(exceptions.RemoteServiceUnavailable):
            store.add(image_id, Source(rng(units.Mi)), units.Mi, "sha512")
    finally:
        sim.clear_faults()
    assert_gone(sim, store, image_id)


def test_device_error_rolls_back(
    sim: Simulator,
    core: chunkio.Copier,
    store_factory: StoreFactory,
    full_device: str,
    rng: Callable[[int], bytes],
) -> None:
    store = store_factory(
        sim, copier=core, connector_factory=lambda proto, helper: RedirectingConnector(full_device)
    )
    image_id = new_id()
    with pytest.raises(exceptions.StorageFull):  # ENOSPC from the device
        store.add(image_id, Source(rng(8 * units.Mi)), 8 * units.Mi, "sha512")
    assert_gone(sim, store, image_id)


def test_device_too_small_rolls_back(
    sim: Simulator,
    core: chunkio.Copier,
    store_factory: StoreFactory,
    loop_device: Callable[..., str],
    rng: Callable[[int], bytes],
) -> None:
    small = loop_device(units.Mi)
    store = store_factory(
        sim, copier=core, connector_factory=lambda proto, helper: RedirectingConnector(small)
    )
    image_id = new_id()
    with pytest.raises(exceptions.StorageFull):
        store.add(image_id, Source(rng(3 * units.Mi)), 3 * units.Mi, "sha512")
    assert_gone(sim, store, image_id)


# -- Duplicate, leftovers, NotFound, StorageFull --------------------------------------------


def test_duplicate_keeps_the_original(
    sim: Simulator, store: Store, rng: Callable[[int], bytes]
) -> None:
    data = rng(units.Mi + 3)
    image_id = new_id()
    uri = store.add(image_id, Source(data), len(data), "sha512")[0]
    with pytest.raises(exceptions.Duplicate):
        store.add(image_id, Source(rng(10)), 10, "sha512")
    assert read_all(store, uri)[0] == data
    store.delete(locate(store, uri))
    assert_gone(sim, store, image_id)


def test_leftover_of_failed_upload_is_replaced_not_duplicate(
    sim: Simulator, store: Store, rng: Callable[[int], bytes]
) -> None:
    image_id = new_id()
    client = store._configured().client
    # what an upload killed right after its create request leaves (ownership.marker: ours)
    client.create_app_instance(
        f"OS-IMAGE-{image_id}", uuid=image_id, size_gib=1, descr=ownership.marker(image_id)
    )
    uri = f"datera://{sim.host}:{sim.port}/app_instances/{image_id}"
    # an incomplete image is not readable
    with pytest.raises(exceptions.NotFound):
        store.get(locate(store, uri))
    with pytest.raises(exceptions.NotFound):
        store.get_size(locate(store, uri))
    data = rng(2 * units.Mi)
    assert store.add(image_id, Source(data), len(data), "sha512")[0] == uri
    assert len(sim_ais(sim)) == 1
    assert read_all(store, uri)[0] == data
    store.delete(locate(store, uri))
    assert_gone(sim, store, image_id)


def test_delete_removes_an_incomplete_leftover(sim: Simulator, store: Store) -> None:
    image_id = new_id()
    store._configured().client.create_app_instance(
        f"OS-IMAGE-{image_id}", uuid=image_id, size_gib=1, descr=ownership.marker(image_id)
    )
    store.delete(locate(store, f"datera://{sim.host}:{sim.port}/app_instances/{image_id}"))
    assert_gone(sim, store, image_id)


def test_storage_full_before_writing(
    sim: Simulator, store: Store, rng: Callable[[int], bytes]
) -> None:
    sim.set_capacity(units.Gi // 2)
    image_id = new_id()
    source = Source(rng(units.Mi))
    with pytest.raises(exceptions.StorageFull):
        store.add(image_id, source, units.Mi, "sha512")
    assert source.buf.tell() == 0  # nothing read, nothing written
    assert_gone(sim, store, image_id)


def test_storage_full_from_edf(sim: Simulator, store: Store, rng: Callable[[int], bytes]) -> None:
    image_id = new_id()
    sim.add_fault(
        "POST", r"^/app_instances$", status=422, name="InsufficientCapacityError", count=None
    )
    try:
        with pytest.raises(exceptions.StorageFull):
            store.add(image_id, Source(rng(units.Mi)), units.Mi, "sha512")
    finally:
        sim.clear_faults()
    assert_gone(sim, store, image_id)


# -- concurrency ----------------------------------------------------------------------------


def test_parallel_adds_and_gets_through_one_store(sim: Simulator, store: Store) -> None:
    images = {new_id(): os.urandom(3 * units.Mi + i) for i in range(8)}

    def add(item: tuple[str, bytes]) -> tuple[str, str, str]:
        image_id, data = item
        size = len(data) if len(data) % 2 else 0  # half of them of unknown size
        uri, n, md5, _, _ = store.add(image_id, Source(data), size, "md5")
        assert n == len(data)
        return image_id, uri, md5

    with ThreadPoolExecutor(8) as pool:
        added = list(pool.map(add, images.items()))
    for image_id, _uri, md5 in added:
        assert md5 == hashlib.md5(images[image_id]).hexdigest()

    def get(item: tuple[str, str, str]) -> bool:
        image_id, uri, _ = item
        return read_all(store, uri)[0] == images[image_id]

    with ThreadPoolExecutor(8) as pool:
        assert all(pool.map(get, added))
    # eight readers of one image share one attachment
    one = added[0]
    with ThreadPoolExecutor(8) as pool:
        assert all(pool.map(get, [one] * 8))
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda item: store.delete(locate(store, item[1])), added))
    for image_id in images:
        assert_gone(sim, store, image_id)


def _host_reader(
    sim_host: str,
    sim_port: int,
    initiator: str,
    lock_path: str,
    uri: str,
    expected_md5: str,
    started: Any,
    go_on: Any,
    result: Any,
) -> None:
    """One "glance-api host": its own initiator name and lock_path; reads one image."""

    class _Sim:
        host, port, tls, ca_file = sim_host, sim_port, False, None

    conf = make_conf(_Sim(), "datera1", lock_path, {"initiator_name": initiator})
    store = Store(conf, backend="datera1")
    store.configure(re_raise_bsc=True)
    try:
        it, _ = store.get(locate(store, uri))
        md5 = hashlib.md5()
        for i, piece in enumerate(it):
            md5.update(piece)
            if i == 0:
                started.set()
                go_on.wait(60)
        result.put((initiator, md5.hexdigest() == expected_md5))
    finally:
        store._configured().client.close()


@pytest.mark.slow
def test_two_hosts_read_one_image(
    sim: Simulator, store: Store, tmp_path: pathlib.Path, rng: Callable[[int], bytes]
) -> None:
    data = rng(16 * units.Mi)
    image_id = new_id()
    uri = store.add(image_id, Source(data), len(data), "sha512")[0]
    md5 = hashlib.md5(data).hexdigest()
    ctx = multiprocessing.get_context("spawn")
    result = ctx.Queue()
    a_started, b_started, a_go, b_go = (ctx.Event() for _ in range(4))
    host_a = ctx.Process(
        target=_host_reader,
        args=(
            sim.host,
            sim.port,
            "iqn.2026-11.org.example:host-a",
            str(tmp_path / "a"),
            uri,
            md5,
            a_started,
            a_go,
            result,
        ),
    )
    host_b = ctx.Process(
        target=_host_reader,
        args=(
            sim.host,
            sim.port,
            "iqn.2026-11.org.example:host-b",
            str(tmp_path / "b"),
            uri,
            md5,
            b_started,
            b_go,
            result,
        ),
    )
    # Both hosts read the ACL at the same moment: a read-modify-write of the list would lose
    # one of the two entries.
    sim.add_fault("GET", r"/acl_policy$", delay=3.0, count=2)
    host_a.start()
    host_b.start()
    try:
        for proc, started in ((host_a, a_started), (host_b, b_started)):
            while not started.wait(0.5):
                assert proc.is_alive(), f"{proc.name} died before reading (exit {proc.exitcode})"
        a_go.set()  # host A finishes first, while B is mid-read
        host_a.join(60)
        assert host_a.exitcode == 0
        [ai] = sim_ais(sim)
        assert ai["admin_state"] == "online"
        acl = set(ai["acl"])
        assert {p for p in acl if "host-a" in p or "host-b" in p} == {
            "/initiators/iqn.2026-11.org.example:host-a",
            "/initiators/iqn.2026-11.org.example:host-b",
        }
        b_go.set()
        host_b.join(60)
        assert host_b.exitcode == 0
        results = dict(result.get(timeout=5) for _ in range(2))
        assert results == {
            "iqn.2026-11.org.example:host-a": True,
            "iqn.2026-11.org.example:host-b": True,
        }
        assert set(sim_ais(sim)[0]["acl"]) == acl  # nobody removed anybody's entry
    finally:
        a_go.set()
        b_go.set()
        for p in (host_a, host_b):
            p.join(30)
            if p.is_alive():
                p.kill()
                p.join()
    store.delete(locate(store, uri))
    assert_gone(sim, store, image_id)
    # host initiators are shared and stay registered
    assert {"iqn.2026-11.org.example:host-a", "iqn.2026-11.org.example:host-b"} <= {
        i["id"] for i in sim.state()["initiators"]
    }


# -- a non-root tenant ----------------------------------------------------------------------


def test_tenant_is_carried_in_the_uri(
    sim: Simulator, core: chunkio.Copier, store_factory: StoreFactory
) -> None:
    store = store_factory(sim, copier=core, tenant_id="glance")
    data = os.urandom(units.Mi)
    image_id = new_id()
    uri = store.add(image_id, Source(data), len(data), "sha512")[0]
    assert uri == f"datera://{sim.host}:{sim.port}/root/glance/app_instances/{image_id}"
    assert store.url_prefix == f"datera://{sim.host}:{sim.port}/root/glance/app_instances/"
    [ai] = sim_ais(sim)
    assert ai["tenant"] == "/root/glance"
    assert read_all(store, uri)[0] == data
    root_store = store_factory(sim, copier=core)
    with pytest.raises(exceptions.BadStoreUri):
        root_store.get(locate(root_store, uri))
    store.delete(locate(store, uri))
    assert_gone(sim, store, image_id)


# -- API versions ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("offered", "configured"), [(("2.1",), "auto"), (("2.1", "2.2"), "2.1"), (("2.2",), "2.2")]
)
def test_round_trip_on_each_api_version(
    simulator_factory: Callable[..., Simulator],
    core: chunkio.Copier,
    store_factory: StoreFactory,
    offered: tuple[str, ...],
    configured: str,
) -> None:
    sim = simulator_factory(media="loop", api_versions=offered)
    store = store_factory(sim, copier=core, api_version=configured, tenant_id="/root/glance-v")
    assert store._configured().client.api_version == (configured if configured != "auto" else "2.1")
    data = os.urandom(units.Mi + 1)
    image_id = new_id()
    uri = store.add(image_id, Source(data), 0, "sha512")[0]
    it, size = store.get(locate(store, uri), offset=7, chunk_size=1000)
    assert b"".join(it) == data[7:1007] and size == 1000
    [ai] = sim_ais(sim)
    assert len(ai["acl"]) == 1
    store.delete(locate(store, uri))
    assert_gone(sim, store, image_id)
    assert sim.state()["app_instances"] == []
