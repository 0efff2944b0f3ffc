"""Lingering attachments (``AttachSettings.linger``): one attach for reads one after another.

The timer and the clock are injected: a test ends a linger by firing its timer, never by
waiting. Another process is a real fork sharing the records under ``lock_path``.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import pathlib
import time
from collections.abc import Callable
from typing import Any

import pytest

from datera_glance import attach
from datera_glance.edf import models
from tests.unit.test_attach import FakeClient, FakeConnector, Owner, make_si


class ManualTimer:
    def __init__(self, delay: float, callback: Callable[[], None]) -> None:
        self.delay = delay
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True

    def fire(self) -> None:
        """Run the callback, cancelled or not: a timer thread can lose the race with cancel."""
        self.callback()


class ManualTimers:
    def __init__(self) -> None:
        self.made: list[ManualTimer] = []

    def __call__(self, delay: float, callback: Callable[[], None]) -> ManualTimer:
        timer = ManualTimer(delay, callback)
        self.made.append(timer)
        return timer

    def live(self) -> list[ManualTimer]:
        return [t for t in self.made if not t.cancelled]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Host:
    """One host's attacher with a fake cluster, connector, timer and clock."""

    def __init__(self, tmp_path: pathlib.Path, device: str, linger: float = 30.0) -> None:
        self.client = FakeClient(make_si())
        self.conn = FakeConnector(device)
        self.timers = ManualTimers()
        self.clock = Clock()
        self.lock_path = tmp_path / "locks"
        # udev's link for the LUN, which tells a record's device is this target's
        self.by_path = tmp_path / "by-path"
        self.by_path.mkdir(parents=True, exist_ok=True)
        si = self.client.si
        link = self.by_path / f"ip-{si.ips[0]}:3260-iscsi-{si.iqn}-lun-0"
        if not link.is_symlink():
            link.symlink_to(device)
        self.attacher = self.make(linger)

    def make(self, linger: float = 30.0) -> attach.Attacher:
        settings = attach.AttachSettings(
            connector="iscsi",
            lock_path=str(self.lock_path),
            scope="10.0.0.1:7718/root",
            linger=linger,
        )
        return attach.Attacher(
            self.client,  # type: ignore[arg-type]
            settings,
            connector_factory=lambda protocol, root_helper: self.conn,
            device_owner=Owner(),
            geteuid=lambda: 0,
            clock=self.clock,
            timer=self.timers,
            by_path_dir=str(self.by_path),
        )

    def ai(self) -> models.AppInstance:
        return self.client.ai()

    def records(self) -> list[dict[str, Any]]:
        return [json.loads(p.read_text()) for p in self.lock_path.glob("*.json")]


@pytest.fixture
def device(tmp_path: pathlib.Path) -> str:
    dev = tmp_path / "sdx"
    dev.write_bytes(b"\0" * 4096)
    return str(dev)


@pytest.fixture
def host(tmp_path: pathlib.Path, device: str) -> Host:
    return Host(tmp_path, device)


def test_back_to_back_readers_attach_once(host: Host) -> None:
    for _ in range(20):
        with host.attacher.attached(host.ai()):
            pass
    assert len(host.conn.connects) == 1
    assert host.conn.disconnects == []
    [record] = host.records()
    assert record["users"] == []
    assert record["linger"]["pid"] == os.getpid()
    assert record["linger"]["until"] == host.clock.now + 30.0
    [timer] = host.timers.live()  # each release replaced the previous one
    assert timer.delay == 30.0
    timer.fire()
    assert len(host.conn.disconnects) == 1
    assert host.records() == []


def test_a_reader_during_the_linger_keeps_it_from_ending(host: Host) -> None:
    host.attacher.attach(host.ai()).close()
    [first] = host.timers.live()
    reader = host.attacher.attach(host.ai())
    first.fire()  # the linger this reader joined ends: the reader keeps the device
    assert host.conn.disconnects == []
    reader.close()
    first.fire()  # late and superseded: the reader's release lingers anew
    assert host.conn.disconnects == []
    [second] = host.timers.live()
    second.fire()
    assert len(host.conn.connects) == len(host.conn.disconnects) == 1


def test_linger_zero_detaches_at_once(tmp_path: pathlib.Path, device: str) -> None:
    host = Host(tmp_path, device, linger=0)
    host.attacher.attach(host.ai()).close()
    assert len(host.conn.disconnects) == 1
    assert host.timers.made == [] and host.records() == []


def test_a_writer_detaches_at_once(host: Host) -> None:
    # An upload's growth takes the volume offline right after: nothing may stay attached.
    host.attacher.attach(host.ai()).detach()
    assert len(host.conn.disconnects) == 1
    assert host.timers.made == [] and host.records() == []


def test_delete_detaches_a_lingering_attachment_not_a_read(host: Host) -> None:
    deleted: list[str] = []
    reader = host.attacher.attach(host.ai())
    assert not host.attacher.unless_attached(host.ai().uuid, lambda: deleted.append("ai"))
    assert deleted == [] and host.conn.disconnects == []  # a reader holds it: InUseByStore
    reader.close()

    def delete() -> None:  # what Store.delete and gc pass: the device must be gone by now
        deleted.append("ai")
        assert len(host.conn.disconnects) == 1

    assert host.attacher.unless_attached(host.ai().uuid, delete)
    assert deleted == ["ai"]
    assert host.records() == []
    assert host.timers.live() == []  # its timer is cancelled ...
    host.timers.made[0].fire()  # ... and firing it anyway does nothing
    assert len(host.conn.disconnects) == 1


def test_close_ends_this_process_lingers(host: Host) -> None:
    host.attacher.attach(host.ai()).close()
    host.attacher.close()  # Store.close, and glance-api's exit
    assert len(host.conn.disconnects) == 1
    assert host.records() == [] and host.timers.live() == []


def _read_and_die(host: Host, attacher: attach.Attacher, connects_before: int) -> None:
    """A second glance-api process: joins the lingering attachment, lingers itself, and is
    killed before its timer fires."""
    attacher.attach(host.ai()).close()
    os._exit(0 if len(host.conn.connects) == connects_before else 3)


def test_another_process_joins_and_a_crash_is_swept_at_the_next_start(host: Host) -> None:
    host.attacher.attach(host.ai()).close()
    [ours] = host.timers.live()
    proc = multiprocessing.get_context("fork").Process(
        target=_read_and_die, args=(host, host.attacher, len(host.conn.connects))
    )
    proc.start()
    proc.join(30)
    assert proc.exitcode == 0, "the other process attached again instead of joining"
    [record] = host.records()
    assert record["linger"]["pid"] == proc.pid  # its linger, its (lost) timer
    ours.fire()  # superseded: not ours to end
    assert host.conn.disconnects == []

    restarted = host.make()  # glance-api starts again
    assert len(restarted.reclaim()) == 1
    assert len(host.conn.disconnects) == 1
    assert host.records() == []


def test_reclaim_keeps_live_readers_and_lingers(host: Host) -> None:
    reader = host.attacher.attach(host.ai())
    assert host.make().reclaim() == []  # a live reader
    reader.close()
    assert host.make().reclaim() == []  # a live linger, its time not up
    host.clock.now += 31  # time is up and the timer was lost
    assert len(host.make().reclaim()) == 1
    assert len(host.conn.disconnects) == 1


def _attach_and_die(attacher: attach.Attacher, ai: models.AppInstance) -> None:
    attacher.attach(ai)
    os._exit(0)  # killed while reading


def test_reclaim_detaches_what_a_dead_reader_held(host: Host) -> None:
    proc = multiprocessing.get_context("fork").Process(
        target=_attach_and_die, args=(host.attacher, host.ai())
    )
    proc.start()
    proc.join(30)
    assert proc.exitcode == 0
    assert len(host.make().reclaim()) == 1
    assert len(host.conn.disconnects) == 1
    assert host.records() == []


def _zombie(body: Callable[[], object]) -> int:
    """A forked child that runs ``body`` and exits, left unreaped (a zombie) until the caller
    waits for it: what glance-api's killed workers are until init reaps them."""
    pid = os.fork()
    if pid == 0:  # the child
        try:
            body()
        finally:
            os._exit(0)
    for _ in range(3000):
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            if f.read().rpartition(")")[2].split()[0] == "Z":
                return pid
        time.sleep(0.01)
    raise AssertionError(f"child {pid} did not exit")


@pytest.mark.parametrize("left", ["reader", "linger"])
def test_reclaim_takes_a_dead_but_unreaped_process_for_dead(host: Host, left: str) -> None:
    """``kill(pid, 0)`` succeeds on a zombie; after a crash of glance-api its workers stay
    zombies until init reaps them (1-2 s on the CI machine), which is when the restarted
    workers reclaim stale attachments: an unexpired linger (or a reader) of a zombie must not
    count as alive."""
    ai = host.ai()

    def attach_then_exit() -> None:
        attachment = host.attacher.attach(ai)
        if left == "linger":
            attachment.close()  # lingers for 30 s by the shared clock

    pid = _zombie(attach_then_exit)
    try:
        assert len(host.make().reclaim()) == 1
        assert len(host.conn.disconnects) == 1
        assert host.records() == []
    finally:
        os.waitpid(pid, 0)


def test_records_of_an_earlier_boot_are_dropped_not_disconnected(host: Host) -> None:
    host.attacher.attach(host.ai()).close()
    [path] = host.lock_path.glob("*.json")
    record = json.loads(path.read_text())
    record["boot"] = record["linger"]["boot"] = "an-earlier-boot"
    path.write_text(json.dumps(record))

    restarted = host.make()
    with restarted.attached(host.ai()):  # not joined: that device is gone
        assert len(host.conn.connects) == 2
    host.timers.live()[-1].fire()
    assert len(host.conn.disconnects) == 1  # only the new attachment's

    path.write_text(json.dumps(record))
    assert len(restarted.reclaim()) == 1
    assert len(host.conn.disconnects) == 1  # dropped, nothing to disconnect
    assert host.records() == []
