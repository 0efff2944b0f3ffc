"""The streaming copier on regular files (O_DIRECT on ext4), on both cores."""

from __future__ import annotations

import errno
import hashlib
import io
import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from oslo_utils import units

from datera_glance import chunkio
from datera_glance.chunkio import DeviceFull, DirectIOUnsupported, SizeMismatch, _read
from tests.plugins.core import Resources, ShortReader


def _payload(n: int, seed: int = 1) -> bytes:
    return random.Random(seed).randbytes(n)


def _target(tmp_path: Path, capacity: int, fill: bytes = b"\0", name: str = "dev.img") -> str:
    path = tmp_path / name
    if fill == b"\0":
        with open(path, "wb") as f:
            f.truncate(capacity)
    else:
        path.write_bytes(fill * capacity)
    return str(path)


class ThreadHasher:
    """md5 that records which threads fed it."""

    def __init__(self) -> None:
        self.h = hashlib.md5()
        self.threads: set[int] = set()
        self.nbytes = 0

    def update(self, data: Any) -> None:
        self.threads.add(threading.get_ident())
        self.nbytes += memoryview(data).nbytes
        self.h.update(data)


def _random_chunks(data: bytes, seed: int = 3) -> Iterator[Any]:
    rng = random.Random(seed)
    pos = 0
    kinds: list[Callable[[bytes], Any]] = [
        bytes,
        bytearray,
        memoryview,
        lambda b: np.frombuffer(b, np.uint8),
    ]
    while pos < len(data):
        n = rng.choice([0, 1, 100, 4096, 70_000, 300_000, 1_500_000])
        yield rng.choice(kinds)(data[pos : pos + n])
        pos += n


@pytest.mark.parametrize(
    "size", [0, 1, 511, 4095, 4096, 4097, units.Mi - 1, units.Mi, units.Mi + 1, 3 * units.Mi + 5]
)
def test_round_trip_and_hashes(core: chunkio.Copier, tmp_path: Path, size: int) -> None:
    data = _payload(size)
    path = _target(tmp_path, 4 * units.Mi)
    md5, sha = hashlib.md5(), hashlib.sha512()
    res = Resources()
    n = core.write_stream(
        io.BytesIO(data), path, size=size, hashers=[md5, sha], buffer_size=256 * units.Ki
    )
    res.assert_nothing_left()
    assert n == size
    assert md5.hexdigest() == hashlib.md5(data).hexdigest()
    assert sha.hexdigest() == hashlib.sha512(data).hexdigest()
    on_disk = Path(path).read_bytes()
    assert on_disk[:size] == data
    assert on_disk[size:] == bytes(4 * units.Mi - size)
    back = list(core.read_range(path, 0, size, buffer_size=256 * units.Ki))
    assert b"".join(back) == data
    assert all(0 < len(c) <= 256 * units.Ki for c in back)
    res.assert_nothing_left()


@pytest.mark.parametrize("depth", [1, 2, 4])
@pytest.mark.parametrize("buffer_size", [4 * units.Ki, 64 * units.Ki, units.Mi])
def test_depth_and_buffer_sizes(
    core: chunkio.Copier, tmp_path: Path, depth: int, buffer_size: int
) -> None:
    data = _payload(2 * units.Mi + 333)
    path = _target(tmp_path, 3 * units.Mi)
    md5 = hashlib.md5()
    n = core.write_stream(
        _random_chunks(data), path, hashers=[md5], buffer_size=buffer_size, depth=depth
    )
    assert n == len(data)
    assert md5.hexdigest() == hashlib.md5(data).hexdigest()
    got = b"".join(core.read_range(path, 0, len(data), buffer_size=buffer_size, depth=depth))
    assert got == data


def test_short_reads_never_ask_more_than_a_buffer(core: chunkio.Copier, tmp_path: Path) -> None:
    data = _payload(5 * units.Mi + 17)
    path = _target(tmp_path, 6 * units.Mi)
    reader = ShortReader(data, limit=units.Mi)
    sha = hashlib.sha256()
    assert core.write_stream(reader, path, hashers=[sha], buffer_size=units.Mi) == len(data)
    assert sha.hexdigest() == hashlib.sha256(data).hexdigest()
    assert Path(path).read_bytes()[: len(data)] == data
    assert max(reader.asked) == units.Mi and len(reader.asked) > 20


@pytest.mark.parametrize(
    "make_source",
    [
        pytest.param(lambda d: iter([d]), id="one-big-chunk"),
        pytest.param(lambda d: [d[i : i + 1000] for i in range(0, len(d), 1000)], id="list"),
        pytest.param(_random_chunks, id="mixed-types"),
        pytest.param(lambda d: (bytearray(d[i : i + 7]) for i in range(0, len(d), 7)), id="tiny"),
        pytest.param(io.BytesIO, id="bytesio"),
    ],
)
def test_source_types(core: chunkio.Copier, tmp_path: Path, make_source: Any) -> None:
    data = _payload(units.Mi + 12345)
    path = _target(tmp_path, 2 * units.Mi)
    n = core.write_stream(make_source(data), path, size=len(data), buffer_size=128 * units.Ki)
    assert n == len(data)
    assert Path(path).read_bytes()[: len(data)] == data


def test_reader_returning_more_than_asked(core: chunkio.Copier, tmp_path: Path) -> None:
    data = _payload(units.Mi + 7)

    class Greedy:
        pos = 0

        def read(self, n: int) -> bytes:
            out = data[self.pos : self.pos + 3 * n + 5]
            self.pos += len(out)
            return out

    path = _target(tmp_path, 2 * units.Mi)
    assert core.write_stream(Greedy(), path, size=len(data), buffer_size=64 * units.Ki) == len(data)
    assert Path(path).read_bytes()[: len(data)] == data


@pytest.mark.parametrize("buffering", [0, -1], ids=["raw", "buffered"])
def test_file_object_source(core: chunkio.Copier, tmp_path: Path, buffering: int) -> None:
    data = _payload(2 * units.Mi + 99)
    src = tmp_path / "src.bin"
    src.write_bytes(data)
    path = _target(tmp_path, 3 * units.Mi)
    md5 = hashlib.md5()
    with open(src, "rb", buffering=buffering) as f:
        assert core.write_stream(f, path, hashers=[md5], buffer_size=256 * units.Ki) == len(data)
    assert md5.hexdigest() == hashlib.md5(data).hexdigest()
    assert Path(path).read_bytes()[: len(data)] == data


class ReadOnlyRaw(io.RawIOBase):
    """A raw stream that implements ``read()`` only, so ``readinto`` raises NotImplementedError."""

    def __init__(self, data: bytes) -> None:
        self.source = ShortReader(data, limit=units.Mi)

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        return self.source.read(n)


def test_raw_stream_with_read_only(core: chunkio.Copier, tmp_path: Path) -> None:
    """Any object with ``read()`` is a source, whatever it derives from.

    glance_store's other drivers only call ``read(n)`` on the image file
    (glance_store/common/utils.py ``chunkreadable``/``chunkiter``, used by
    glance_store/_drivers/filesystem.py ``add``), so an ``io.RawIOBase`` subclass that
    implements just ``read()`` is a valid image source; ``readinto`` is an optimisation.
    """
    data = _payload(3 * units.Mi + 77)
    path = _target(tmp_path, 4 * units.Mi)
    md5 = hashlib.md5()
    source = ReadOnlyRaw(data)
    n = core.write_stream(source, path, hashers=[md5], size=len(data), buffer_size=units.Mi)
    assert n == len(data)
    assert md5.hexdigest() == hashlib.md5(data).hexdigest()
    assert Path(path).read_bytes()[: len(data)] == data
    assert max(source.source.asked) <= units.Mi


def test_hashers_and_verifier_each_on_own_thread(core: chunkio.Copier, tmp_path: Path) -> None:
    data = _payload(2 * units.Mi + 5)
    path = _target(tmp_path, 3 * units.Mi)
    hashers = [ThreadHasher(), ThreadHasher()]
    verifier = ThreadHasher()
    core.write_stream(
        io.BytesIO(data), path, hashers=hashers, verifier=verifier, buffer_size=64 * units.Ki
    )
    everyone = [*hashers, verifier]
    for h in everyone:
        assert h.h.hexdigest() == hashlib.md5(data).hexdigest()
        assert h.nbytes == len(data)
        assert len(h.threads) == 1
        assert threading.get_ident() not in h.threads
    assert len(set().union(*(h.threads for h in everyone))) == 3


def test_too_many_bytes_writes_nothing_more(core: chunkio.Copier, tmp_path: Path) -> None:
    bs = 64 * units.Ki
    size = 2 * bs + 10
    data = _payload(3 * bs + 100)
    path = _target(tmp_path, 4 * bs, fill=b"\xaa")
    res = Resources()
    with pytest.raises(SizeMismatch) as info:
        core.write_stream(io.BytesIO(data), path, size=size, buffer_size=bs)
    assert isinstance(info.value, ValueError)
    res.assert_nothing_left()
    on_disk = Path(path).read_bytes()
    for i in range(2):  # queued writes may be dropped once the copy fails
        assert on_disk[i * bs : (i + 1) * bs] in (data[i * bs : (i + 1) * bs], b"\xaa" * bs)
    assert on_disk[2 * bs :] == b"\xaa" * (2 * bs)


def test_too_few_bytes(core: chunkio.Copier, tmp_path: Path) -> None:
    data = _payload(100_000)
    path = _target(tmp_path, units.Mi)
    res = Resources()
    with pytest.raises(SizeMismatch, match="100000"):
        core.write_stream(io.BytesIO(data), path, size=len(data) + 1, buffer_size=64 * units.Ki)
    res.assert_nothing_left()


def test_offset(core: chunkio.Copier, tmp_path: Path) -> None:
    data = _payload(70_000)
    path = _target(tmp_path, units.Mi, fill=b"\x11")
    core.write_stream([data], path, offset=8192, buffer_size=16 * units.Ki)
    on_disk = Path(path).read_bytes()
    assert on_disk[:8192] == b"\x11" * 8192
    assert on_disk[8192 : 8192 + len(data)] == data
    assert b"".join(core.read_range(path, 8192, len(data))) == data
    with pytest.raises(ValueError, match="multiple of the block size"):
        core.write_stream([data], path, offset=100)


def test_grow_crossing_several_times(core: chunkio.Copier, tmp_path: Path) -> None:
    step = units.Mi
    path = _target(tmp_path, step)
    data = _payload(4 * step + 12345)
    calls: list[int] = []

    def grow(written: int) -> str:
        # The copier hands over a drained, closed device.
        assert not any(t == path for t in Resources().fds.values())
        calls.append(written)
        with open(path, "r+b") as f:
            f.truncate(os.path.getsize(path) + step)
        return path

    md5 = hashlib.md5()
    res = Resources()
    n = core.write_stream(
        ShortReader(data, limit=256 * units.Ki),
        path,
        hashers=[md5],
        grow=grow,
        buffer_size=256 * units.Ki,
    )
    res.assert_nothing_left()
    assert n == len(data)
    assert calls == [step, 2 * step, 3 * step, 4 * step]
    assert md5.hexdigest() == hashlib.md5(data).hexdigest()
    assert Path(path).read_bytes()[: len(data)] == data


def test_grow_to_a_new_path(core: chunkio.Copier, tmp_path: Path) -> None:
    paths = [_target(tmp_path, 512 * units.Ki, name="dev0.img")]
    data = _payload(units.Mi + 1)

    def grow(written: int) -> str:
        new = str(tmp_path / f"dev{len(paths)}.img")
        os.rename(paths[-1], new)
        with open(new, "r+b") as f:
            f.truncate(os.path.getsize(new) + 512 * units.Ki)
        paths.append(new)
        return new

    assert core.write_stream([data], paths[0], grow=grow, buffer_size=128 * units.Ki) == len(data)
    assert len(paths) == 3
    assert Path(paths[-1]).read_bytes()[: len(data)] == data


def test_grow_that_does_not_grow(core: chunkio.Copier, tmp_path: Path) -> None:
    path = _target(tmp_path, 256 * units.Ki)
    res = Resources()
    with pytest.raises(DeviceFull, match="did not enlarge"):
        core.write_stream(
            [_payload(units.Mi)], path, grow=lambda w: path, buffer_size=64 * units.Ki
        )
    res.assert_nothing_left()


def test_past_the_end_without_grow(core: chunkio.Copier, tmp_path: Path) -> None:
    path = _target(tmp_path, 256 * units.Ki)
    res = Resources()
    with pytest.raises(DeviceFull) as info:
        core.write_stream([_payload(units.Mi)], path, buffer_size=64 * units.Ki)
    assert info.value.errno == errno.ENOSPC
    assert info.value.filename == path
    res.assert_nothing_left()

    reader = ShortReader(b"x" * units.Mi, limit=64 * units.Ki)
    with pytest.raises(DeviceFull):
        core.write_stream(reader, path, size=units.Mi, buffer_size=64 * units.Ki)
    assert reader.asked == []  # refused before reading anything
    res.assert_nothing_left()


def test_enospc_from_the_device(core: chunkio.Copier) -> None:
    res = Resources()
    with pytest.raises(DeviceFull) as info:
        core.write_stream(
            [b"x" * units.Mi], "/dev/full", allow_buffered=True, buffer_size=64 * units.Ki
        )
    assert info.value.errno == errno.ENOSPC
    res.assert_nothing_left()


def test_refuses_buffered_unless_allowed(core: chunkio.Copier) -> None:
    res = Resources()
    with pytest.raises(DirectIOUnsupported, match="allow_buffered") as info:
        core.write_stream([b"x"], "/dev/null")
    assert info.value.errno == errno.EINVAL
    assert info.value.filename == "/dev/null"
    with pytest.raises(DirectIOUnsupported):
        next(core.read_range("/dev/zero", 0, 10))
    assert core.write_stream([b"x" * 100_000], "/dev/null", allow_buffered=True) == 100_000
    got = b"".join(core.read_range("/dev/zero", 3, 300_000, allow_buffered=True))
    assert got == bytes(300_000)
    res.assert_nothing_left()


def test_source_raising_midway(core: chunkio.Copier, tmp_path: Path) -> None:
    path = _target(tmp_path, 4 * units.Mi)

    def source() -> Iterator[bytes]:
        yield _payload(units.Mi)
        yield _payload(units.Mi)
        raise ConnectionResetError("client went away")

    res = Resources()
    with pytest.raises(ConnectionResetError, match="client went away"):
        core.write_stream(source(), path, hashers=[hashlib.md5()], buffer_size=64 * units.Ki)
    res.assert_nothing_left()


def test_interrupt_midway(core: chunkio.Copier, tmp_path: Path) -> None:
    path = _target(tmp_path, 4 * units.Mi)

    def source() -> Iterator[bytes]:
        yield _payload(units.Mi)
        raise KeyboardInterrupt

    res = Resources()
    with pytest.raises(KeyboardInterrupt):
        core.write_stream(
            source(), path, hashers=[hashlib.sha1()], buffer_size=64 * units.Ki, depth=3
        )
    res.assert_nothing_left()


def test_hasher_raising(core: chunkio.Copier, tmp_path: Path) -> None:
    path = _target(tmp_path, 4 * units.Mi)

    class Bad:
        def __init__(self) -> None:
            self.calls = 0

        def update(self, data: Any) -> None:
            self.calls += 1
            if self.calls == 3:
                raise RuntimeError("verifier says no")

    res = Resources()
    with pytest.raises(RuntimeError, match="verifier says no"):
        core.write_stream(
            [_payload(3 * units.Mi)],
            path,
            hashers=[hashlib.md5()],
            verifier=Bad(),
            buffer_size=64 * units.Ki,
        )
    res.assert_nothing_left()


def test_open_errors(core: chunkio.Copier, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        core.write_stream([b"x"], str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError):
        next(core.read_range(str(tmp_path / "missing"), 0, 1))
    path = _target(tmp_path, units.Mi)
    bads: list[dict[str, Any]] = [{"buffer_size": 1000}, {"buffer_size": 0}, {"depth": 0}]
    for bad in bads:
        with pytest.raises(ValueError):
            core.write_stream([b"x"], path, **bad)
        with pytest.raises(ValueError):
            core.read_range(path, 0, 1, **bad)


@pytest.mark.parametrize("buffer_size", [64 * units.Ki, 256 * units.Ki, units.Mi])
def test_skip_zeros(core: chunkio.Copier, tmp_path: Path, buffer_size: int) -> None:
    bs = 64 * units.Ki  # the grain at which zero blocks are skipped, whatever the buffer size
    data = _payload(bs) + bytes(3 * bs) + _payload(bs, seed=9) + bytes(bs // 2)
    md5 = hashlib.md5()
    # On a fresh sparse file the skipped blocks read back as zeros.
    sparse = _target(tmp_path, 8 * bs)
    core.write_stream([data], sparse, hashers=[md5], skip_zeros=True, buffer_size=buffer_size)
    assert md5.hexdigest() == hashlib.md5(data).hexdigest()
    assert b"".join(core.read_range(sparse, 0, len(data))) == data
    assert os.stat(sparse).st_blocks * 512 <= 3 * bs  # only the non-zero blocks landed
    # On old contents they are really not written (the documented caveat).
    old = _target(tmp_path, 8 * bs, fill=b"\xff", name="old.img")
    core.write_stream([data], old, skip_zeros=True, buffer_size=buffer_size)
    on_disk = Path(old).read_bytes()
    assert on_disk[:bs] == data[:bs]
    assert on_disk[bs : 4 * bs] == b"\xff" * (3 * bs)
    assert on_disk[4 * bs : 5 * bs] == data[4 * bs : 5 * bs]
    assert on_disk[5 * bs :] == b"\xff" * (3 * bs)  # the all-zero tail was skipped too


def test_memory_bounded_by_the_ring(core: chunkio.Copier, tmp_path: Path) -> None:
    """The source is never more than (depth + 2) buffers ahead of the slowest hasher."""
    bs, depth = 64 * units.Ki, 2
    path = _target(tmp_path, 4 * units.Mi)

    class Slow:
        nbytes = 0

        def update(self, data: Any) -> None:
            time.sleep(0.002)
            self.nbytes += memoryview(data).nbytes

    slow = Slow()
    lead: list[int] = []

    class Reader:
        pos = 0

        def read(self, n: int) -> bytes:
            lead.append(self.pos - slow.nbytes)
            self.pos += n
            return b"\x01" * n if self.pos <= 2 * units.Mi else b""

    core.write_stream(Reader(), path, hashers=[slow], buffer_size=bs, depth=depth)
    assert slow.nbytes == 2 * units.Mi
    assert max(lead) <= (depth + 2) * bs
    assert max(lead) >= depth * bs  # the pipeline did run ahead


@pytest.mark.parametrize(
    ("offset", "length"),
    [
        (0, 0),
        (0, 1),
        (1, 1),
        (511, 2),
        (4095, 4098),
        (5000, 300_000),
        (1, units.Mi - 2),
        (0, 3 * units.Mi),
    ],
)
@pytest.mark.parametrize("depth", [1, 3])
def test_read_range_any_alignment(
    core: chunkio.Copier, tmp_path: Path, offset: int, length: int, depth: int
) -> None:
    data = _payload(3 * units.Mi)
    path = tmp_path / "img"
    path.write_bytes(data)
    chunks = list(
        core.read_range(str(path), offset, length, buffer_size=64 * units.Ki, depth=depth)
    )
    assert b"".join(chunks) == data[offset : offset + length]
    assert all(isinstance(c, bytes) and 0 < len(c) <= 64 * units.Ki for c in chunks)


def test_a_range_within_one_buffer_is_one_read_on_the_calling_thread_through_the_spare(
    core: chunkio.Copier, tmp_path: Path
) -> None:
    """A ranged read (as glance's ranged download asks) that fits one buffer starts no reader
    thread, comes as one chunk, and goes through the copier's spare buffer, the same one on
    every call: a fresh buffer per call would pay its page faults and zeroing every time
    (chunkio._read.Reader._read_whole, SpareBuffer)."""
    data = _payload(3 * units.Mi)
    path = tmp_path / "img"
    path.write_bytes(data)
    threads = threading.active_count()
    spares = []
    for offset in (1, 4097, 1_234_567):
        gen = core.read_range(str(path), offset, units.Mi, buffer_size=4 * units.Mi, depth=4)
        chunks = [next(gen)]
        assert threading.active_count() == threads  # no reader threads
        chunks += list(gen)
        assert chunks == [data[offset : offset + units.Mi]]
        spares += core.spare.kept
    assert len(spares) == 3 and spares[0] is spares[1] is spares[2]
    assert len(spares[0]) % core.core.HUGE_PAGE_SIZE == 0


def test_the_spare_is_not_shared_and_not_kept_when_too_big(core: chunkio.Copier) -> None:
    """Concurrent single reads each get their own buffer; a buffer above SPARE_MAX is freed
    after its read rather than kept (it would hold that memory in an idle glance-api)."""
    spare = _read.SpareBuffer(core.core)
    first, second = spare.take(units.Mi), spare.take(units.Mi)
    assert first is not second
    spare.give(first)
    spare.give(second)
    assert spare.kept == [first] and second.closed
    assert spare.take(3 * units.Mi) is not first and first.closed  # too small: replaced
    big = spare.take(_read.SPARE_MAX + 1)
    spare.give(big)
    assert spare.kept == [] and big.closed


_HEAP_PROBE = """
import ctypes, random, sys
from datera_glance import chunkio

class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]

libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = Info
path, kind = sys.argv[1], sys.argv[2]
copier = chunkio.get_copier("compiled")
rng = random.Random(3)
sizes = []
for call in range(40):
    if kind == "stream":
        for chunk in copier.read_range(path, 3 + call, 20 << 20, buffer_size=4 << 20, depth=4):
            pass
    else:
        for _ in range(10):
            offset = rng.randrange(20 << 20)
            for chunk in copier.read_range(path, offset, 1 << 20, buffer_size=4 << 20):
                pass
    info = libc.mallinfo2()
    sizes.append(info.arena + info.hblkhd)
print(sizes[39] - sizes[4])
"""


@pytest.mark.parametrize("kind", ["stream", "ranged"])
def test_repeated_reads_do_not_grow_the_heap(tmp_path: Path, kind: str) -> None:
    """A freed chunk fits the next one, so the heap stays flat. Chunks once shrunk by their
    alignment trim with realloc left holes a few bytes too small, and the heap grew by a chunk
    every few reads (4 MiB per 20 MiB streamed; 1 MiB per three 1 MiB ranged reads); chunks
    made on the reader threads spread over one glibc heap per thread (see ``unfilled``)."""
    if "compiled" not in chunkio.available_cores():
        pytest.skip("compiled core not built")
    path = tmp_path / "img"
    path.write_bytes(_payload(22 * units.Mi))
    # A process of its own: glibc's heap, not this test run's, is what is measured.
    out = subprocess.run(
        [sys.executable, "-c", _HEAP_PROBE, str(path), kind],
        check=True,
        capture_output=True,
        text=True,
    )
    growth = int(out.stdout.split()[-1])
    assert growth < 8 * units.Mi, f"the heap grew by {growth / units.Mi:.1f} MiB over 35 calls"


def test_read_range_past_end(core: chunkio.Copier, tmp_path: Path) -> None:
    path = tmp_path / "img"
    path.write_bytes(b"y" * 10_000)
    res = Resources()
    with pytest.raises(EOFError):
        list(core.read_range(str(path), 5000, 5001))
    assert b"".join(core.read_range(str(path), 5000, 5000)) == b"y" * 5000
    res.assert_nothing_left()


def test_read_range_closed_early(core: chunkio.Copier, tmp_path: Path) -> None:
    path = tmp_path / "img"
    path.write_bytes(_payload(4 * units.Mi))
    res = Resources()
    gen = core.read_range(str(path), 0, 4 * units.Mi, buffer_size=64 * units.Ki, depth=4)
    assert len(next(gen)) == 64 * units.Ki
    gen.close()
    res.assert_nothing_left()
    unstarted = core.read_range(str(path), 0, 10)
    del unstarted  # never started: nothing was opened
    res.assert_nothing_left()


def test_two_copies_at_once(core: chunkio.Copier, tmp_path: Path) -> None:
    datas = [_payload(3 * units.Mi + i, seed=i) for i in range(2)]
    paths = [_target(tmp_path, 4 * units.Mi, name=f"d{i}.img") for i in range(2)]
    results: dict[int, Any] = {}

    def run(i: int) -> None:
        md5 = hashlib.md5()
        try:
            n = core.write_stream(
                ShortReader(datas[i], units.Mi, seed=i),
                paths[i],
                hashers=[md5],
                buffer_size=units.Mi,
            )
            back = b"".join(core.read_range(paths[i], 0, n, buffer_size=units.Mi))
            results[i] = (n, md5.hexdigest(), back)
        except BaseException as exc:  # reported below
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(2):
        assert results[i] == (len(datas[i]), hashlib.md5(datas[i]).hexdigest(), datas[i])


def test_the_store_on_the_compiled_core_does_not_load_the_python_twin() -> None:
    """The twin needs numpy: a glance-api worker that imports the store must not load numpy
    (tens of MiB and OpenBLAS's thread pool per worker) for a core it does not use."""
    if "compiled" not in chunkio.available_cores():
        pytest.skip("compiled core not built")
    probe = (
        "import sys, datera_glance.store, datera_glance.chunkio as c\n"
        "assert c.CORE == 'compiled', c.CORE\n"
        "print(sorted(m for m in ('numpy', 'datera_glance._chunkio_py') if m in sys.modules))"
    )
    env = {k: v for k, v in os.environ.items() if k != "DATERA_GLANCE_NO_EXTENSIONS"}
    out = subprocess.run(
        [sys.executable, "-c", probe], check=True, capture_output=True, text=True, env=env
    )
    assert out.stdout.strip() == "[]"
