"""The fault matrix: the real Store on the loop simulator with faults injected through
``Simulator.add_fault`` (what ``POST /_sim/faults`` does), sessions expired, the simulator
restarted and its capacity taken away, in the middle of operations.

Each case ends in success or in the glance_store exception glance 33 maps to the right answer
(glance/api/v2/image_data.py for uploads and downloads, glance/api/v2/images.py for deletes):

- ``ClusterUnavailable`` (``RemoteServiceUnavailable`` + ``TimeoutError``): 503, which clients
  retry; glance keeps the image (queued after a failed upload, active after a failed delete).
- ``StorageFull``: 413; ``BackendException`` (any other cluster or host failure): 500, the
  image goes back to queued. Uploads roll back in every failing case.

After every case the simulator holds no app instance (so no ACL entry: ACLs live on the
app instances' storage instances), the kernel no loop device over the simulator's volume
files, and ``lock_path`` no attach record. The host's initiator is the one thing that stays,
by design: attach.py registers it once per host and never removes it (other images and
other glance-api processes of the host use it), so "left" means any initiator other than
that one.
"""

from __future__ import annotations

import hashlib
import os
import random
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from glance_store import exceptions
from glance_store import location as glance_location
from os_brick import exception as brick_exception
from os_brick.initiator.connectors.local import LocalConnector
from oslo_utils import units

from datera_glance import compat
from datera_glance.simulator import Simulator
from datera_glance.store import ClusterUnavailable, Store, StoreLocation
from tests.plugins.simulator import loop_devices_on
from tests.plugins.store import TEST_INITIATOR, RedirectingConnector, StoreFactory

pytestmark = pytest.mark.root

SIZE = 6 * units.Mi + 4321  # two io buffers and a bit
AI = r"^/app_instances/[^/]+$"  # the app instance itself: GET, PUT admin_state, DELETE
METADATA = r"^/app_instances/[^/]+/metadata$"


# -- helpers --------------------------------------------------------------------------------


class Source:
    """glance's request body: ``read(n)`` over ``data``; ``hook()`` runs once at ``at``."""

    def __init__(
        self, data: bytes, at: int | None = None, hook: Callable[[], None] | None = None
    ) -> None:
        self.data, self.pos, self.at, self.hook = data, 0, at, hook

    def read(self, n: int = -1) -> bytes:
        if self.hook is not None and self.at is not None and self.pos >= self.at:
            hook, self.hook = self.hook, None
            hook()
        n = len(self.data) - self.pos if n < 0 else n
        out = self.data[self.pos : self.pos + n]
        self.pos += len(out)
        return out


class Growing:
    """An upload of unknown size past its first 1 GiB volume: zeros (hashed, not written with
    ``skip_zero_blocks``) with random marks around the growth; ``hook()`` runs at ``at``."""

    TOTAL = units.Gi + 3 * units.Mi + 11
    MARKS = (0, units.Gi - units.Mi // 2, units.Gi + 2 * units.Mi)

    def __init__(self, at: int | None = None, hook: Callable[[], None] | None = None) -> None:
        rng = random.Random(7)
        self.marks = {m: rng.randbytes(units.Mi) for m in self.MARKS}
        self.at, self.hook = at, hook

    def __iter__(self) -> Iterator[bytes]:
        zero = bytes(4 * units.Mi)
        pos = 0
        for mark in [*self.MARKS, self.TOTAL]:
            while pos < mark:
                if self.hook is not None and self.at is not None and pos >= self.at:
                    hook, self.hook = self.hook, None
                    hook()
                piece = zero[: min(len(zero), mark - pos)]
                pos += len(piece)
                yield piece
            if mark in self.marks:
                yield self.marks[mark]
                pos += units.Mi


@pytest.fixture
def sim(loop_simulator: Simulator) -> Iterator[Simulator]:
    yield loop_simulator
    loop_simulator.clear_faults()


class Images:
    """One store's view for the tests: add, read back, delete, and the leak check."""

    def __init__(self, sim: Simulator, store: Store) -> None:
        self.sim, self.store = sim, store

    def location(self, uri: str) -> glance_location.Location:
        return glance_location.Location(
            "datera", StoreLocation, self.store.conf, uri=uri, backend=self.store.backend_group
        )

    def uri(self, image_id: str) -> str:
        return self.store.settings.url_prefix + image_id

    def add(self, source: Any, size: int, image_id: str | None = None, algo: str = "sha512") -> str:
        uri = self.store.add(image_id or str(uuid.uuid4()), source, size, algo)[0]
        return str(uri)

    def read(self, uri: str, **kw: Any) -> bytes:
        chunks, _ = self.store.get(self.location(uri), **kw)
        return b"".join(chunks)

    def round_trip(self, data: bytes, uri: str) -> None:
        """The stored image reads back exactly, then goes; nothing is left."""
        assert self.store.get_size(self.location(uri)) == len(data)
        assert hashlib.md5(self.read(uri)).digest() == hashlib.md5(data).digest()
        self.store.delete(self.location(uri))
        self.assert_clean()

    def check_growing(self, source: Growing, uri: str) -> None:
        assert self.store.get_size(self.location(uri)) == source.TOTAL
        for mark, blob in source.marks.items():
            assert self.read(uri, offset=mark, chunk_size=units.Mi) == blob, mark
        self.store.delete(self.location(uri))
        self.assert_clean()

    def assert_clean(self) -> None:
        state = self.sim.state()
        assert state["app_instances"] == [], "app instances (and their ACL entries) left"
        assert state["loop_devices"] == [] and loop_devices_on(self.sim.data_dir) == []
        assert [i["id"] for i in state["initiators"]] in ([], [TEST_INITIATOR])
        lock_path = Path(self.store.settings.lock_path)
        assert not list(lock_path.glob("datera-glance-attach-*.json")), "attach records left"


@pytest.fixture
def images(sim: Simulator, store_factory: StoreFactory) -> Callable[..., Images]:
    def make(**options: Any) -> Images:
        options.setdefault("retry_deadline", 5.0)
        return Images(sim, store_factory(sim, **options))

    return make


@pytest.fixture
def data() -> bytes:
    return os.urandom(SIZE)


# -- 401: the session key refused mid-operation ---------------------------------------------


def test_sessions_expired_mid_operation_log_in_again(
    sim: Simulator, images: Callable[..., Images], data: bytes
) -> None:
    """EDF answers 401 for an expired session key; the client logs in once more and repeats
    the call (edf/session.py), so add, get and delete succeed across the expiry."""
    imgs = images()
    uri = imgs.add(Source(data, at=SIZE // 2, hook=sim.expire_sessions), SIZE)
    sim.expire_sessions()
    assert imgs.read(uri) == data
    sim.expire_sessions()
    imgs.round_trip(data, uri)


@pytest.mark.parametrize(
    ("method", "path", "skip"),
    [
        ("POST", r"^/app_instances$", 0),
        ("PUT", r"/acl_policy/initiators$", 0),
        ("PUT", METADATA, 1),  # the final checksum and length
        ("GET", AI, 1),  # the add's attach looks at the app instance
        ("GET", r"/metadata$", 0),  # get_size
        ("DELETE", AI, 0),
    ],
)
def test_one_401_on_each_call_is_survived(
    sim: Simulator, images: Callable[..., Images], data: bytes, method: str, path: str, skip: int
) -> None:
    imgs = images()
    sim.add_fault(method, path, status=401, skip=skip)
    uri = imgs.add(Source(data), SIZE)
    imgs.round_trip(data, uri)
    assert sim.faults.to_json() == [], "the fault never hit a request"


def test_401_that_persists_fails_the_upload_cleanly(
    sim: Simulator, images: Callable[..., Images], data: bytes
) -> None:
    """Refused again after a fresh login: ``AuthError``, a ``BackendException`` (glance: 500,
    the image back to queued); the rollback's own calls are not refused."""
    imgs = images()
    sim.add_fault("PUT", METADATA, status=401, skip=1, count=None)
    with pytest.raises(exceptions.BackendException, match=r"401|[Ss]ession"):
        imgs.add(Source(data), SIZE)
    imgs.assert_clean()


# -- 503 bursts -----------------------------------------------------------------------------

BURSTS = [
    ("add", "POST", r"^/app_instances$", 0),
    ("add", "PUT", METADATA, 1),
    ("get", "GET", AI, 0),
    ("get_size", "GET", AI, 0),
    ("delete", "DELETE", AI, 0),
]


def _run(imgs: Images, operation: str, data: bytes, uri: str | None) -> str:
    if operation == "add":
        return imgs.add(Source(data), SIZE)
    assert uri is not None
    if operation == "get":
        assert imgs.read(uri) == data
    elif operation == "get_size":
        assert imgs.store.get_size(imgs.location(uri)) == SIZE
    else:
        imgs.store.delete(imgs.location(uri))
    return uri


@pytest.mark.parametrize(("operation", "method", "path", "skip"), BURSTS)
def test_503_burst_shorter_than_the_deadline_is_retried(
    sim: Simulator,
    images: Callable[..., Images],
    data: bytes,
    operation: str,
    method: str,
    path: str,
    skip: int,
) -> None:
    """Two 503s take at most 1.5 s of backoff (edf/retry.py): within a 5 s deadline."""
    imgs = images(retry_deadline=5.0)
    uri = None if operation == "add" else imgs.add(Source(data), SIZE)
    sim.add_fault(method, path, status=503, skip=skip, count=2)
    uri = _run(imgs, operation, data, uri)
    assert sim.faults.to_json() == [], "the burst never hit a request"
    if operation != "delete":
        imgs.round_trip(data, uri)
    imgs.assert_clean()


@pytest.mark.parametrize(("operation", "method", "path", "skip"), BURSTS)
def test_503_burst_longer_than_the_deadline_is_503_then_works(
    sim: Simulator,
    images: Callable[..., Images],
    data: bytes,
    operation: str,
    method: str,
    path: str,
    skip: int,
) -> None:
    """503 past ``datera_retry_deadline`` is ``ClusterUnavailable``: glance answers 503 to
    the upload (it catches glance_store's ``TimeoutError``), download (its
    ``RemoteServiceUnavailable``) and delete (``TimeoutError``; the image stays active). A
    failed upload rolls back; once the burst ends the same call works."""
    imgs = images(retry_deadline=1.5)
    uri = None if operation == "add" else imgs.add(Source(data), SIZE)
    sim.add_fault(method, path, status=503, skip=skip, count=None)
    with pytest.raises(ClusterUnavailable) as caught:
        _run(imgs, operation, data, uri)
    assert isinstance(caught.value, exceptions.RemoteServiceUnavailable)
    assert isinstance(caught.value, compat.StoreTimeoutError)
    sim.clear_faults()
    if operation == "add":
        imgs.assert_clean()
        uri = _run(imgs, operation, data, uri)
    assert uri is not None
    imgs.round_trip(data, uri)  # a failed delete left the image readable


# -- dropped connections on every mutating call ---------------------------------------------

MUTATING = [
    ("PUT", r"^/login$", 0),
    ("POST", r"^/tenants$", 0),
    ("POST", r"^/app_instances$", 0),
    ("POST", r"^/initiators$", 0),
    ("PUT", r"/acl_policy/initiators$", 0),
    ("PUT", METADATA, 0),  # the upload record
    ("PUT", METADATA, 1),  # checksum and length
    ("PUT", AI, 0),  # delete: offline
    ("DELETE", AI, 0),
]


@pytest.mark.parametrize("after", [False, True], ids=["before", "after"])
@pytest.mark.parametrize(("method", "path", "skip"), MUTATING)
def test_dropped_connection_on_each_mutating_call(
    sim: Simulator,
    images: Callable[..., Images],
    data: bytes,
    method: str,
    path: str,
    skip: int,
    after: bool,
) -> None:
    """The connection closes without an answer, before the call took effect or after: the
    client retries (edf/retry.py); a retried POST's 409 is confirmed by a lookup, a retried
    DELETE's 404 is success, a repeated ACL add's 409 means present (edf/session.py,
    edf/access.py). The operation succeeds and nothing is made twice."""
    imgs = images(tenant_id="/root/glance_faults")  # a fresh tenant: POST /tenants too
    sim.add_fault(method, path, drop=True, skip=skip, after=after)
    uri = imgs.add(Source(data), SIZE)
    assert len(sim.state()["app_instances"]) == 1
    imgs.round_trip(data, uri)
    assert sim.faults.to_json() == [], "the fault never hit a request"


@pytest.mark.slow
@pytest.mark.parametrize("after", [False, True], ids=["before", "after"])
def test_dropped_connection_on_each_growth_call(
    sim: Simulator, images: Callable[..., Images], after: bool
) -> None:
    """The growth of an upload of unknown size: offline, resize and online, each losing its
    first connection (edf/retry.py: PUTs are repeated as they are)."""
    imgs = images(skip_zero_blocks=True)
    sim.add_fault("PUT", AI, drop=True, after=after)  # offline
    sim.add_fault("PUT", r"/volumes/[^/]+$", drop=True, after=after)
    sim.add_fault("PUT", AI, drop=True, after=after, skip=1)  # online (skip the retry)
    source = Growing()
    uri = imgs.add(iter(source), 0, algo="md5")
    assert sim.faults.to_json() == []
    imgs.check_growing(source, uri)


# -- read timeouts ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "skip", "delay"),
    [
        # The slow POST lands before the retry (1.0 s timeout + at least 0.25 s backoff): the
        # retry gets 409 and the store adopts the instance its first try created.
        ("POST", r"^/app_instances$", 0, 1.1),
        # The retry creates the instance first; the slow POST lands later and gets 409.
        ("POST", r"^/app_instances$", 0, 3.0),
        # The upload record lands after the final checksum: the image is still complete.
        ("PUT", METADATA, 0, 3.0),
        ("PUT", METADATA, 1, 1.6),
        ("GET", AI, 1, 1.6),
        ("DELETE", AI, 0, 1.6),
    ],
)
def test_read_timeout_once_is_retried(
    sim: Simulator,
    images: Callable[..., Images],
    data: bytes,
    method: str,
    path: str,
    skip: int,
    delay: float,
) -> None:
    """The answer comes after ``datera_request_timeout``: requests' ReadTimeout, retried like a
    lost answer (the slow request still takes effect on the cluster).

    The cluster is judged once the slow request has taken effect: before that a round trip can
    finish first, and the slow POST then creates an instance after the delete (on a real cluster
    too; ``gc`` removes it as an unfinished upload of ours, tests/integration/test_cli_gc.py).
    """
    imgs = images(request_timeout=1.0)
    sim.add_fault(method, path, delay=delay, skip=skip)
    uri = imgs.add(Source(data), SIZE)
    if method != "DELETE":
        assert sim.faults.wait_settled(timeout=30), "the slow request never finished"
    imgs.round_trip(data, uri)
    assert sim.faults.wait_settled(timeout=30), "the slow request never finished"
    imgs.assert_clean()
    assert sim.faults.to_json() == [], "the delay never hit a request"


def test_read_timeouts_past_the_deadline_are_503(
    sim: Simulator, images: Callable[..., Images], data: bytes
) -> None:
    imgs = images(request_timeout=1.0, retry_deadline=2.0)
    uri = imgs.add(Source(data), SIZE)
    sim.add_fault("GET", AI, delay=1.3, count=None)
    with pytest.raises(ClusterUnavailable):
        imgs.store.get_size(imgs.location(uri))
    sim.clear_faults()
    imgs.round_trip(data, uri)


# -- a failure at each step of add ----------------------------------------------------------


class FailingConnector(LocalConnector):
    """os-brick's LOCAL connector whose first ``connect_volume`` fails as os-brick's do."""

    failed = False

    def connect_volume(self, connection_properties: dict[str, Any]) -> dict[str, Any]:
        if not FailingConnector.failed:
            FailingConnector.failed = True
            raise brick_exception.VolumeDeviceNotFound(device="/dev/sdx")
        info: dict[str, Any] = super().connect_volume(connection_properties)
        return info


STEPS = [  # (step, method, path, skip); the cluster answers 500 InternalError
    ("create", "POST", r"^/app_instances$", 0),
    ("initiator", "POST", r"^/initiators$", 0),
    ("acl", "PUT", r"/acl_policy/initiators$", 0),
    ("upload record", "PUT", METADATA, 0),
    ("metadata", "PUT", METADATA, 1),
]
GROWTH_STEPS = [  # an upload of unknown size: the only add that takes the volume offline
    ("offline", "PUT", AI, 0),
    ("resize", "PUT", r"/volumes/[^/]+$", 0),
    ("online", "PUT", AI, 1),
]


@pytest.mark.parametrize(("step", "method", "path", "skip"), STEPS, ids=[s[0] for s in STEPS])
def test_failure_at_each_cluster_step_of_add_rolls_back(
    sim: Simulator,
    images: Callable[..., Images],
    data: bytes,
    step: str,
    method: str,
    path: str,
    skip: int,
) -> None:
    """An EDF error at any step is a ``BackendException`` (glance: 500, image queued, the
    upload may be retried) and the app instance goes. A new app instance is online already
    (EDF creates them online), so a known-size add has no online or offline step."""
    imgs = images()
    sim.add_fault(method, path, status=500, skip=skip)
    with pytest.raises(exceptions.BackendException, match="500"):
        imgs.add(Source(data), SIZE)
    imgs.assert_clean()
    imgs.round_trip(data, imgs.add(Source(data), SIZE))  # and the next upload works


@pytest.mark.slow
@pytest.mark.parametrize(
    ("step", "method", "path", "skip"), GROWTH_STEPS, ids=[s[0] for s in GROWTH_STEPS]
)
def test_failure_at_each_growth_step_rolls_back(
    sim: Simulator, images: Callable[..., Images], step: str, method: str, path: str, skip: int
) -> None:
    imgs = images(skip_zero_blocks=True)
    sim.add_fault(method, path, status=500, skip=skip)
    with pytest.raises(exceptions.BackendException, match="500"):
        imgs.add(iter(Growing()), 0, algo="md5")
    imgs.assert_clean()


def test_failure_to_attach_rolls_back(
    sim: Simulator, images: Callable[..., Images], data: bytes
) -> None:
    """os-brick's own exception is an ``AttachError`` inside the attacher (attach.py), a
    ``BackendException`` here."""
    FailingConnector.failed = False
    imgs = images(connector_factory=lambda protocol, helper: FailingConnector(helper))
    with pytest.raises(exceptions.BackendException, match="connecting"):
        imgs.add(Source(data), SIZE)
    imgs.assert_clean()
    imgs.round_trip(data, imgs.add(Source(data), SIZE))


def test_failure_to_write_rolls_back(
    sim: Simulator, images: Callable[..., Images], full_device: str, data: bytes
) -> None:
    """The device runs out of room under the write (ENOSPC): ``StorageFull``, 413 in glance,
    as glance_store's filesystem driver maps ENOSPC (_drivers/filesystem.py)."""
    imgs = images(connector_factory=lambda protocol, helper: RedirectingConnector(full_device))
    with pytest.raises(exceptions.StorageFull):
        imgs.add(Source(data), SIZE)
    imgs.assert_clean()


# -- the simulator restarted mid-upload -----------------------------------------------------


def test_simulator_restarted_mid_upload(
    sim: Simulator, images: Callable[..., Images], data: bytes
) -> None:
    """A restart while the data is written (no REST call in flight): sessions are gone (401,
    login again), the volume file keeps what was written, the upload completes."""
    imgs = images()

    def restart() -> None:
        sim.stop()
        sim.start()

    uri = imgs.add(Source(data, at=SIZE // 2, hook=restart), SIZE)
    imgs.round_trip(data, uri)


def test_simulator_down_mid_upload_and_back_within_the_deadline(
    sim: Simulator, images: Callable[..., Images], data: bytes
) -> None:
    """Stopped mid-upload and started 1.5 s later: the next call's connection errors are
    retried until the cluster answers again."""
    imgs = images(retry_deadline=10.0)
    starter = threading.Timer(1.5, sim.start)

    def stop() -> None:
        sim.stop()
        starter.start()

    try:
        uri = imgs.add(Source(data, at=SIZE // 2, hook=stop), SIZE)
    finally:
        starter.join()
    imgs.round_trip(data, uri)


def test_simulator_down_past_the_deadline_then_the_retried_upload_replaces_the_leftover(
    sim: Simulator, images: Callable[..., Images], data: bytes
) -> None:
    """Down for longer than the retry deadline: ``ClusterUnavailable`` (glance: 503, image
    queued). The rollback cannot reach the cluster either, so the app instance stays as an
    incomplete upload (no length: never readable); the client's retried upload of the image
    replaces it (``Store.add``'s leftover check) and nothing else is left."""
    imgs = images(retry_deadline=1.0)
    image_id = str(uuid.uuid4())
    with pytest.raises(ClusterUnavailable):
        imgs.add(Source(data, at=SIZE // 2, hook=sim.stop), SIZE, image_id=image_id)
    sim.start()
    [left] = sim.state()["app_instances"]
    assert left["uuid"] == image_id and "length" not in left["metadata"]
    with pytest.raises(exceptions.NotFound):
        imgs.store.get_size(imgs.location(imgs.uri(image_id)))
    uri = imgs.add(Source(data), SIZE, image_id=image_id)
    assert len(sim.state()["app_instances"]) == 1
    imgs.round_trip(data, uri)


# -- capacity exhausted midway --------------------------------------------------------------


@pytest.mark.slow
def test_capacity_exhausted_midway_through_an_unknown_size_upload(
    sim: Simulator, images: Callable[..., Images]
) -> None:
    """Other writers take the room while the first GiB is written: the growth's resize gets
    EDF's 422 InsufficientCapacityError, ``StorageFull`` (glance: 413), and the upload rolls
    back."""
    imgs = images(skip_zero_blocks=True)

    def fill() -> None:
        sim.set_capacity(sim.state()["capacity"]["used"])

    with pytest.raises(exceptions.StorageFull, match=r"[Ii]nsufficient capacity"):
        imgs.add(iter(Growing(at=units.Gi // 2, hook=fill)), 0, algo="md5")
    imgs.assert_clean()
