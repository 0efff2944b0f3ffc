"""Building blocks of the benchmarks: test data, loop devices, reference tools, verification.

Nothing here knows about rounds or reports (see ``suite.py``); everything here is usable from
pytest and from ``python -m benchmarks.run`` alike.

Throughput is MB/s = 10**6 bytes/s, as dd and fio print it.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import json
import mmap
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from datera_glance.simulator.media import LoopMedia

KiB = 1 << 10
MiB = 1 << 20
GiB = 1 << 30

_libc = ctypes.CDLL(None, use_errno=True)
_memcmp = _libc.memcmp
_memcmp.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t]
_memcmp.restype = ctypes.c_int


class CopyMismatch(AssertionError):
    """What was read back or hashed differs from the source: a fast wrong copy."""


class Hasher(Protocol):
    def update(self, data: Any, /) -> None: ...
    def hexdigest(self) -> str: ...


def address(buf: Any) -> tuple[int, np.ndarray]:
    """Address of any buffer (bytes, memoryview, mmap) without copying; keep the array alive."""
    arr = np.frombuffer(buf, dtype=np.uint8)
    return int(arr.ctypes.data), arr


def size_label(n: int) -> str:
    """64 KiB -> '64K', 4 MiB -> '4M' (dd/fio notation)."""
    for unit, suffix in ((GiB, "G"), (MiB, "M"), (KiB, "K")):
        if n >= unit and n % unit == 0:
            return f"{n // unit}{suffix}"
    return str(n)


def mbps(nbytes: int, seconds: float) -> float:
    return nbytes / seconds / 1e6 if seconds > 0 else float("inf")


# --------------------------------------------------------------------------------------------
# Test data


class Pattern:
    """A deterministic pseudo-random stream: ``period`` random bytes repeated.

    The period is deliberately not a multiple of any buffer or block size, so a buffer written
    at the wrong offset, twice, or not at all reads back wrong.  ``prefix`` holds enough of the
    stream that any slice of up to ``max_read`` bytes is contiguous (zero-copy reads).
    """

    def __init__(self, seed: int, total: int, max_read: int, period: int = 64 * MiB + 4097):
        self.seed = seed
        self.total = total
        self.period = period
        length = min(total, period + max_read)
        rng = np.random.default_rng(seed)
        base = rng.bytes(min(period, length))
        reps = -(-length // len(base))
        self.prefix: bytes = (base * reps)[:length] if reps > 1 else base[:length]
        self.view = memoryview(self.prefix)
        self._addr, self._keep = address(self.prefix)
        self._digests: dict[str, str] = {}

    def segment(self, pos: int, n: int) -> memoryview:
        """Up to ``n`` bytes of the stream at ``pos`` (fewer at the prefix's end)."""
        start = pos % self.period
        return self.view[start : start + min(n, len(self.prefix) - start)]

    def check(self, pos: int, data: Any) -> None:
        """Raise CopyMismatch unless ``data`` equals the stream at ``pos``."""
        addr, keep = address(data)
        n = len(keep)
        done = 0
        while done < n:
            start = (pos + done) % self.period
            k = min(n - done, len(self.prefix) - start)
            if _memcmp(addr + done, self._addr + start, k) != 0:
                raise CopyMismatch(f"data differs from the source within [{pos + done}, +{k})")
            done += k

    def digest(self, name: str) -> str:
        """hexdigest of the whole stream (computed once)."""
        if name not in self._digests:
            h = hashlib.new(name)
            src = PatternSource(self)
            while chunk := src.read(4 * MiB):
                h.update(chunk)
            self._digests[name] = h.hexdigest()
        return self._digests[name]

    def write_file(self, path: Path) -> None:
        with open(path, "wb") as f:
            src = PatternSource(self)
            while chunk := src.read(16 * MiB):
                f.write(chunk)


class PatternSource:
    """An image stream over a Pattern: ``read(n)`` returns zero-copy views, maybe short."""

    def __init__(self, pattern: Pattern, total: int | None = None):
        self.pattern = pattern
        self.total = pattern.total if total is None else total
        self.pos = 0

    def read(self, n: int = -1) -> memoryview | bytes:
        left = self.total - self.pos
        if left <= 0:
            return b""
        if n < 0 or n > left:
            n = left
        chunk = self.pattern.segment(self.pos, n)
        self.pos += len(chunk)
        return chunk


class SparseSource:
    """A stream that is all zeros except a ``1 - zero_fraction`` share of ``segment``-sized
    runs of pattern data, spread deterministically.  The first segment is data (a boot sector)."""

    def __init__(self, pattern: Pattern, zero_fraction: float, segment: int, seed: int = 7):
        self.pattern = pattern
        self.total = pattern.total
        self.segment = segment
        nseg = -(-self.total // segment)
        ndata = max(1, round(nseg * (1.0 - zero_fraction)))
        rng = np.random.default_rng(seed)
        chosen = rng.choice(np.arange(1, nseg), size=min(ndata - 1, nseg - 1), replace=False)
        self.data_segments = np.zeros(nseg, dtype=bool)
        self.data_segments[0] = True
        self.data_segments[chosen] = True
        self.zeros = bytes(segment)
        self.pos = 0

    @property
    def data_bytes(self) -> int:
        return int(self.data_segments.sum()) * self.segment

    def written_bound(self, buffer_size: int) -> int:
        """Bytes a copier that skips whole all-zero buffers writes: every buffer holding data."""
        seg_per_buf = max(1, buffer_size // self.segment)
        nbuf = -(-len(self.data_segments) // seg_per_buf)
        padded = np.zeros(nbuf * seg_per_buf, dtype=bool)
        padded[: len(self.data_segments)] = self.data_segments
        return int(padded.reshape(nbuf, seg_per_buf).any(axis=1).sum()) * buffer_size

    def read(self, n: int = -1) -> memoryview | bytes:
        left = self.total - self.pos
        if left <= 0:
            return b""
        seg, within = divmod(self.pos, self.segment)
        n = min(left if n < 0 else n, left, self.segment - within)
        if self.data_segments[seg]:
            chunk: memoryview | bytes = self.pattern.segment(self.pos, n)
        else:
            chunk = memoryview(self.zeros)[:n]
        self.pos += len(chunk)
        return chunk

    def check(self, pos: int, data: Any) -> None:
        mv = memoryview(data).cast("B")
        done = 0
        while done < len(mv):
            seg, within = divmod(pos + done, self.segment)
            k = min(len(mv) - done, self.segment - within)
            piece = mv[done : done + k]
            if self.data_segments[seg]:
                self.pattern.check(pos + done, piece)
            elif piece.tobytes() != self.zeros[:k]:
                raise CopyMismatch(f"expected zeros within [{pos + done}, +{k})")
            done += k


class Expected(Protocol):
    total: int

    def check(self, pos: int, data: Any) -> None: ...


# --------------------------------------------------------------------------------------------
# Devices


def require_root() -> None:
    if os.geteuid() != 0:
        raise SystemExit(
            "the benchmarks need root: they attach loop devices (losetup) and write to them;"
            " run ./dev bench as root"
        )


@contextlib.contextmanager
def loop_device(backing: Path, size: int, sector_size: int = 512) -> Iterator[str]:
    """A loop device with direct I/O over a fresh sparse file; detached on exit."""
    with open(backing, "wb") as f:
        f.truncate(size)
    loop = LoopMedia(sector_size=sector_size)
    dev = loop.attach(backing)
    try:
        yield dev
    finally:
        loop.detach(dev, backing)


def loop_info(dev: str) -> dict[str, Any]:
    """The facts that decide a loop device's speed, for the results file."""
    name = os.path.basename(dev)
    info: dict[str, Any] = {"device": dev}
    for key, rel in (
        ("dio", "loop/dio"),
        ("logical_block_size", "queue/logical_block_size"),
        ("max_sectors_kb", "queue/max_sectors_kb"),
    ):
        with contextlib.suppress(OSError):
            info[key] = Path(f"/sys/block/{name}/{rel}").read_text().strip()
    return info


def allocated_bytes(path: Path) -> int:
    return os.stat(path).st_blocks * 512


def drop_device_cache(dev: str) -> None:
    """Forget the device's page cache (buffered baseline only; O_DIRECT bypasses it)."""
    fd = os.open(dev, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def verify_device(dev: str, expected: Expected, buffer_size: int = 4 * MiB) -> None:
    """Read ``[0, expected.total)`` back with O_DIRECT and compare: raises CopyMismatch."""
    fd = os.open(dev, os.O_RDONLY | os.O_DIRECT)
    buf = mmap.mmap(-1, buffer_size)
    try:
        pos = 0
        while pos < expected.total:
            n = os.preadv(fd, [buf], pos)
            if n <= 0:
                raise CopyMismatch(f"device ends at {pos}, expected {expected.total} bytes")
            k = min(n, expected.total - pos)
            with memoryview(buf) as mv:
                expected.check(pos, mv[:k])
            pos += k
    finally:
        os.close(fd)
        # A CopyMismatch traceback still references slices of buf; then the GC frees it.
        with contextlib.suppress(BufferError):
            buf.close()


# --------------------------------------------------------------------------------------------
# Measurements and reference tools


@dataclass
class Measurement:
    """One timed transfer. ``seconds`` is the tool's own figure for dd/fio, else wall time."""

    nbytes: int
    seconds: float
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def mbps(self) -> float:
        return mbps(self.nbytes, self.seconds)


_DD_RE = re.compile(r"^(\d+) bytes .*copied, ([0-9.e+-]+) s", re.MULTILINE)


def _run(cmd: Sequence[str]) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, LC_ALL="C")
    proc = subprocess.run(list(cmd), capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc


def dd_write(src: Path, dev: str, bs: int, total: int) -> Measurement:
    """``dd oflag=direct conv=fsync``: one I/O in flight; dd's own time includes the fsync."""
    cmd = ["dd", f"if={src}", f"of={dev}", f"bs={bs}", f"count={total // bs}"]
    return _dd([*cmd, "oflag=direct", "conv=fsync,notrunc"], total)


def dd_read(dev: str, bs: int, total: int) -> Measurement:
    cmd = ["dd", f"if={dev}", "of=/dev/null", f"bs={bs}", f"count={total // bs}", "iflag=direct"]
    return _dd(cmd, total)


def _dd(cmd: list[str], total: int) -> Measurement:
    proc = _run(cmd)
    m = _DD_RE.search(proc.stderr)
    if not m:
        raise RuntimeError(f"cannot parse dd output: {proc.stderr!r}")
    nbytes, seconds = int(m.group(1)), float(m.group(2))
    if nbytes != total:
        raise CopyMismatch(f"dd moved {nbytes} bytes, expected {total}")
    return Measurement(nbytes, seconds, {"cmd": " ".join(cmd)})


def ensure_fio() -> str:
    """Path of fio, installing the Debian package when missing (needs root and apt)."""
    found = shutil.which("fio")
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise SystemExit("fio is missing: install it (Debian/Ubuntu: apt-get install fio)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    print("==> installing fio with apt-get", flush=True)
    subprocess.run(["apt-get", "install", "-y", "-q", "fio"], check=True, env=env)
    found = shutil.which("fio")
    if not found:
        raise SystemExit("apt-get install fio did not provide fio")
    return found


def fio(
    dev: str, rw: str, bs: int, total: int, iodepth: int = 4, io_size: int | None = None
) -> Measurement:
    """fio libaio, O_DIRECT, ``iodepth`` I/Os in flight over the first ``total`` bytes (``rw``
    read, write or randread; ``io_size`` bytes moved, default ``total``); fio's own figure."""
    moved = total if io_size is None else io_size
    cmd = [
        "fio",
        "--name=ref",
        f"--filename={dev}",
        f"--rw={rw}",
        f"--bs={bs}",
        f"--size={total}",
        f"--io_size={moved}",
        "--direct=1",
        "--ioengine=libaio",
        f"--iodepth={iodepth}",
        "--numjobs=1",
        "--randrepeat=0",
        "--output-format=json",
    ]
    if rw == "write":
        cmd.append("--end_fsync=1")
    proc = _run(cmd)
    # fio may print warnings before the JSON document.
    doc = json.loads(proc.stdout[proc.stdout.index("{") :])
    job = doc["jobs"][0]["write" if "write" in rw else "read"]
    nbytes, bw = int(job["io_bytes"]), float(job["bw_bytes"])
    if nbytes != moved or bw <= 0:
        raise RuntimeError(f"fio moved {nbytes} bytes at {bw} B/s, expected {moved} bytes")
    return Measurement(nbytes, nbytes / bw, {"cmd": " ".join(cmd)})


# --------------------------------------------------------------------------------------------
# Python baselines


def buffered_write(
    source: PatternSource | SparseSource,
    dev: str,
    buffer_size: int,
    hashers: Sequence[Hasher] = (),
) -> Measurement:
    """What the upstream driver and glance's cinder store do: read a chunk, update the hashes
    inline, ``f.write`` it through the page cache; ``fsync`` at the end."""
    t0 = time.perf_counter()
    with open(dev, "wb") as f:
        while chunk := source.read(buffer_size):
            for h in hashers:
                h.update(chunk)
            f.write(chunk)
        f.flush()
        os.fsync(f.fileno())
    return Measurement(source.total, time.perf_counter() - t0)


def buffered_read(dev: str, total: int, buffer_size: int, expected: Expected) -> Measurement:
    """The cinder store's ``get``: ``open(device, 'rb')`` and ``read(chunk)`` until done."""
    drop_device_cache(dev)
    pos = 0
    t0 = time.perf_counter()
    with open(dev, "rb") as f:
        while pos < total:
            chunk = f.read(min(buffer_size, total - pos))
            if not chunk:
                break
            expected.check(pos, chunk)
            pos += len(chunk)
    seconds = time.perf_counter() - t0
    if pos != total:
        raise CopyMismatch(f"buffered read returned {pos} bytes, expected {total}")
    return Measurement(total, seconds)


def hash_speed(pattern: Pattern, name: str, chunk: int = 4 * MiB) -> Measurement:
    """hashlib alone over the same stream (the limit of an upload that hashes)."""
    h = hashlib.new(name)
    src = PatternSource(pattern)
    t0 = time.perf_counter()
    while data := src.read(chunk):
        h.update(data)
    seconds = time.perf_counter() - t0
    if h.hexdigest() != pattern.digest(name):
        raise CopyMismatch(f"{name} of the stream changed between runs")
    return Measurement(pattern.total, seconds)
