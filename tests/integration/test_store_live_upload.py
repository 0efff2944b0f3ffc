"""``Store.add`` over an incomplete app instance of the same image: it replaces the leftover of
a dead upload and never an upload still in progress (``upload_state.judge_upload``, the
judgement ``datera-glance gc`` makes).

A live upload is refused with glance_store's ``Duplicate``, the exception ``add`` raises for a
complete image too. glance 33 has no glance_store exception that it answers 409 for an upload:
glance/api/v2/image_data.py ``upload`` catches ``glance_store.Duplicate`` nowhere (only
``stage`` turns it into 409) and glance/notifier.py ``ImageProxy.set_data`` turns glance's own
``glance.common.exception.Duplicate`` (another class) into 409; so the client gets a 500 and
the image goes back to ``queued`` (``_restore``) while the other upload goes on untouched.
"""

from __future__ import annotations

import io
import logging
import os
import subprocess
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from glance_store import exceptions
from glance_store import location as glance_location
from oslo_utils import units

from datera_glance import upload_state
from datera_glance.edf import models
from datera_glance.simulator import Simulator
from datera_glance.store import Store, StoreLocation
from tests.plugins.store import make_conf

NOW = 1_800_000_000.0
OTHER_HOST = "glance-api-2.example.org"
MAX_AGE = upload_state.REPLACE_MAX_AGE


@pytest.fixture
def store(simulator: Simulator, tmp_path: Path) -> Iterator[Store]:
    """The real Store on the simulator, judging heartbeats at ``NOW``."""
    locks = tmp_path / "locks"
    locks.mkdir()
    conf = make_conf(simulator, "datera1", str(locks), {})
    judge = upload_state.Judge(max_age=MAX_AGE, clock=lambda: NOW)
    made = Store(conf, backend="datera1", judge=judge)
    made.configure(re_raise_bsc=False)
    try:
        yield made
    finally:
        made.close()


def new_id() -> str:
    return str(uuid.uuid4())


def ais(sim: Simulator, image_id: str) -> list[dict[str, Any]]:
    return [ai for ai in sim.state()["app_instances"] if ai["uuid"] == image_id]


def begun_upload(
    store: Store, image_id: str, age: float, **record: str
) -> tuple[models.AppInstance, bytes]:
    """An upload someone else began: its app instance, its upload record (written by
    ``upload_state``, heartbeat ``age`` seconds before ``NOW``, keys overridden by ``record``)
    and its first MiB of data."""
    parts = store._configured()
    ai = parts.client.create_app_instance(f"OS-IMAGE-{image_id}", uuid=image_id, size_gib=1)
    start = upload_state.start_record(clock=lambda: NOW - age)
    parts.client.put_metadata(ai.id, {**start, **record})
    data = os.urandom(units.Mi)
    with parts.attacher.attach(ai) as attachment, open(attachment.path, "r+b") as device:
        device.write(data)
        os.fsync(device.fileno())
    return ai, data


def volume_start(store: Store, ai: models.AppInstance, count: int) -> bytes:
    with store._configured().attacher.attach(ai) as attachment, open(attachment.path, "rb") as f:
        return f.read(count)


def remove(store: Store, ai: models.AppInstance) -> None:
    client = store._configured().client
    client.set_offline(ai.id, force=True)
    client.delete_app_instance(ai.id, force=True)


def assert_stored(sim: Simulator, store: Store, image_id: str, old_ai: str, data: bytes) -> None:
    """The image is ``data`` in one new app instance; then it is deleted."""
    [ai] = ais(sim, image_id)
    assert ai["id"] != old_ai
    uri = f"datera://{sim.host}:{sim.port}/app_instances/{image_id}"
    where = glance_location.Location(
        "datera", StoreLocation, store.conf, uri=uri, backend=store.backend_group
    )
    chunks, size = store.get(where)
    assert size == len(data) and b"".join(chunks) == data
    store.delete(where)


def assert_refused(sim: Simulator, store: Store, image_id: str) -> None:
    """A second ``add`` of ``image_id`` is refused before it reads a byte or changes a thing."""
    before = ais(sim, image_id)
    source = io.BytesIO(os.urandom(units.Mi))
    with pytest.raises(exceptions.Duplicate, match=f"{image_id} is being uploaded already"):
        store.add(image_id, source, units.Mi, "sha512")
    assert source.tell() == 0
    assert ais(sim, image_id) == before


def test_a_live_upload_of_another_host_is_kept(
    simulator: Simulator, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """Another host's upload with a heartbeat a minute old: its app instance, record and data
    stay, and the refusal is logged with the image and the reason."""
    image_id = new_id()
    ai, data = begun_upload(
        store, image_id, upload_state.HEARTBEAT_INTERVAL, **{upload_state.HOST: OTHER_HOST}
    )
    with caplog.at_level(logging.WARNING, logger="datera_glance.store"):
        assert_refused(simulator, store, image_id)
    assert volume_start(store, ai, len(data)) == data
    [warning] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert image_id in warning.getMessage()
    assert f"{OTHER_HOST} sent a heartbeat 60 s ago" in warning.getMessage()
    remove(store, ai)


def test_an_upload_of_another_process_on_this_host_is_kept_until_it_is_gone(
    simulator: Simulator, store: Store
) -> None:
    """This host's uploads are judged by their process, whatever their heartbeat's age: kept
    while the writer runs, replaced once it is gone."""
    image_id = new_id()
    with subprocess.Popen(["sleep", "60"]) as writer:
        try:
            writer_start = upload_state.process_start(writer.pid) or ""
            ai, data = begun_upload(
                store,
                image_id,
                2 * MAX_AGE,
                **{upload_state.PID: str(writer.pid), upload_state.PROCESS_START: writer_start},
            )
            assert_refused(simulator, store, image_id)
            assert volume_start(store, ai, len(data)) == data
        finally:
            writer.kill()
    new = os.urandom(units.Mi + 5)
    store.add(image_id, io.BytesIO(new), len(new), "sha512")
    assert_stored(simulator, store, image_id, ai.id, new)


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        (
            {upload_state.HOST: OTHER_HOST},
            f"last heartbeat from {OTHER_HOST} {MAX_AGE + 60:.0f} s ago",
        ),
        ({}, f"the upload of process {os.getpid()} on this host (this one) has ended"),
    ],
    ids=["another-host-stale-heartbeat", "this-process-ended"],
)
def test_the_leftover_of_a_dead_upload_is_replaced(
    simulator: Simulator,
    store: Store,
    caplog: pytest.LogCaptureFixture,
    record: dict[str, str],
    reason: str,
) -> None:
    image_id = new_id()
    ai, _ = begun_upload(store, image_id, MAX_AGE + 60, **record)
    new = os.urandom(2 * units.Mi)
    with caplog.at_level(logging.WARNING, logger="datera_glance.store"):
        store.add(image_id, io.BytesIO(new), len(new), "sha512")
    assert_stored(simulator, store, image_id, ai.id, new)
    assert f"the leftover of a failed upload of image {image_id} ({reason})" in caplog.text


class Paused:
    """An image source that stops after its first read until ``go`` is set."""

    def __init__(self, data: bytes) -> None:
        self.buf = io.BytesIO(data)
        self.reading = threading.Event()
        self.go = threading.Event()

    def read(self, n: int = -1) -> bytes:
        if self.reading.is_set():
            assert self.go.wait(30), "the test never let the upload go on"
        self.reading.set()
        return self.buf.read(n)


def test_an_upload_in_this_process_is_kept(simulator: Simulator, store: Store) -> None:
    """Two requests for one image in one glance-api worker: the second is refused while the
    first writes, and the first completes with its own data."""
    image_id = new_id()
    data = os.urandom(3 * units.Mi + 7)
    first = Paused(data)
    with ThreadPoolExecutor(1) as pool:
        uploading = pool.submit(store.add, image_id, first, len(data), "sha512")
        try:
            assert first.reading.wait(30)
            assert_refused(simulator, store, image_id)
        finally:
            first.go.set()
        uploading.result(timeout=60)
    assert_stored(simulator, store, image_id, "", data)
