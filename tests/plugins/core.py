"""Fixtures: ``core`` (a ``Copier`` per core), ``loop_device`` (real loop devices) and
``full_device`` (a loop device whose storage runs out at 2 MiB); ``Usage``, the peak RSS and
open descriptors of processes during a load.

Every test below the Store runs on both cores through ``core``; with
``DATERA_GLANCE_REQUIRE_EXTENSIONS=1`` a missing compiled core is an error, not a skip.
"""

from __future__ import annotations

import os
import random
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from oslo_utils import units

from datera_glance import chunkio
from datera_glance.simulator.media import LoopMedia, create_volume_file

LoopFactory = Callable[..., str]


class ShortReader:
    """A ``read(n)`` source that returns random short reads and checks what it is asked."""

    def __init__(self, data: bytes, limit: int, seed: int = 2) -> None:
        self.data = memoryview(data)
        self.pos = 0
        self.limit = limit
        self.rng = random.Random(seed)
        self.asked: list[int] = []

    def read(self, n: int) -> bytes:
        assert 0 < n <= self.limit, f"asked for {n} bytes, limit {self.limit}"
        self.asked.append(n)
        take = min(n, self.rng.randint(1, n))
        out = bytes(self.data[self.pos : self.pos + take])
        self.pos += len(out)
        return out


class Resources:
    """Threads and open file descriptors of this process, to compare before/after a copy."""

    def __init__(self) -> None:
        self.threads = set(threading.enumerate())
        self.fds = self._fds()

    @staticmethod
    def _fds() -> dict[str, str]:
        found = {}
        for fd in os.listdir("/proc/self/fd"):
            try:
                found[fd] = os.readlink(f"/proc/self/fd/{fd}")
            except FileNotFoundError:  # the directory listing's own fd, closed by now
                continue
        return found

    def assert_nothing_left(self) -> None:
        extra_threads = set(threading.enumerate()) - self.threads
        assert not extra_threads, f"threads left running: {extra_threads}"
        extra_fds = {fd: t for fd, t in self._fds().items() if self.fds.get(fd) != t}
        assert not extra_fds, f"file descriptors left open: {extra_fds}"


@pytest.fixture(params=["compiled", "python"])
def core(request: pytest.FixtureRequest) -> chunkio.Copier:
    """The copier on each core, ids ``compiled`` and ``python``."""
    name: str = request.param
    if (
        name not in chunkio.available_cores()
        and os.environ.get("DATERA_GLANCE_REQUIRE_EXTENSIONS") != "1"
    ):
        pytest.skip("compiled core not built (python setup.py build_ext --inplace)")
    return chunkio.get_copier(name)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test using ``loop_device`` as ``root`` (before the root conftest skips)."""
    for item in items:
        if "loop_device" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.root)


@pytest.fixture
def loop_device(tmp_path: Path) -> Iterator[LoopFactory]:
    """Factory ``loop_device(size, sector_size=512) -> "/dev/loopN"``, direct-io on.

    Backed by a sparse file under ``tmp_path`` (disk, not tmpfs); every device is detached
    and its file removed at teardown, whatever the test did.
    """
    made: list[tuple[LoopMedia, str, Path]] = []

    def make(size: int, sector_size: int = 512) -> str:
        backing = tmp_path / f"loop{len(made)}.img"
        create_volume_file(backing, size)
        loop = LoopMedia(sector_size=sector_size)
        dev = loop.attach(backing)
        made.append((loop, dev, backing))
        return dev

    try:
        yield make
    finally:
        for loop, dev, backing in made:
            loop.detach(dev, backing)
            backing.unlink(missing_ok=True)


@pytest.fixture
def full_device(tmp_path: Path) -> Iterator[str]:
    """A loop device whose backing file sits on a 2 MiB tmpfs: writes past 2 MiB fail."""
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2M", "tmpfs", str(mnt)], check=True)
    try:
        backing = mnt / "disk.img"
        with open(backing, "wb") as f:
            f.truncate(64 * units.Mi)
        dev = subprocess.run(
            ["losetup", "--find", "--show", str(backing)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        try:
            yield dev
        finally:
            subprocess.run(["losetup", "-d", dev], check=False)
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


class Usage:
    """Peak RSS and open file descriptors of processes while ``with Usage(pids):`` runs.

    The kernel's own peak (``VmHWM``, reset through ``clear_refs`` at the start, as root) for
    memory; a sampler thread every 20 ms for descriptors (the kernel keeps no peak of those).
    """

    def __init__(self, pids: list[int], interval: float = 0.02) -> None:
        self.pids = pids
        self.interval = interval
        self.start_rss: dict[int, int] = {}
        self.start_fds: dict[int, int] = {}
        self.peak_rss: dict[int, int] = {}
        self.peak_fds: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    @staticmethod
    def status(pid: int, field: str) -> int:
        """A ``kB`` field of /proc/PID/status, in bytes."""
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
        raise KeyError(field)

    @staticmethod
    def fds(pid: int) -> int:
        return len(os.listdir(f"/proc/{pid}/fd"))

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            for pid in self.pids:
                self.peak_fds[pid] = max(self.peak_fds.get(pid, 0), self.fds(pid))

    def __enter__(self) -> Usage:
        for pid in self.pids:
            Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM := VmRSS
            self.start_rss[pid] = self.status(pid, "VmRSS")
            self.start_fds[pid] = self.peak_fds[pid] = self.fds(pid)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        for pid in self.pids:
            self.peak_rss[pid] = self.status(pid, "VmHWM")

    def growth(self, pid: int) -> int:
        """Peak RSS above the RSS at the start, bytes."""
        return self.peak_rss[pid] - self.start_rss[pid]

    def report(self) -> str:
        return ", ".join(
            f"pid {pid}: RSS {self.start_rss[pid] / units.Mi:.0f} -> peak "
            f"{self.peak_rss[pid] / units.Mi:.0f} MiB, fds {self.start_fds[pid]} -> peak "
            f"{self.peak_fds[pid]}"
            for pid in self.pids
        )
