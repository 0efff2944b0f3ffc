"""The core functions (compiled and pure-Python twin) give the same results and errors."""

from __future__ import annotations

import errno
import mmap
import os
import random
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from oslo_utils import units

from datera_glance import _chunkio_py, chunkio, host

PAGE = mmap.PAGESIZE


@pytest.fixture
def mod(core: chunkio.Copier) -> ModuleType:
    return core.core


@pytest.fixture
def direct_fd(tmp_path: Path) -> Iterator[tuple[int, str]]:
    path = tmp_path / "f.bin"
    path.write_bytes(b"")
    fd = os.open(path, os.O_RDWR | os.O_DIRECT)
    try:
        yield fd, str(path)
    finally:
        os.close(fd)


def _address(buf: object) -> int:
    arr = np.frombuffer(buf, np.uint8)  # type: ignore[call-overload]
    try:
        return int(arr.ctypes.data)
    finally:
        del arr


def test_core_name(mod: ModuleType, core: chunkio.Copier) -> None:
    assert core.core_name == mod.CORE_NAME
    assert mod.PAGE_SIZE == PAGE


@pytest.mark.parametrize("size", [1, 4096, 5000, 1 << 20])
def test_aligned_buffer_is_page_aligned_zeroed_writable(mod: ModuleType, size: int) -> None:
    buf = mod.AlignedBuffer(size)
    try:
        assert len(buf) == size
        assert _address(buf) % PAGE == 0
        view = memoryview(buf)
        assert not view.readonly and view.format == "B" and view.nbytes == size
        assert view.tobytes() == bytes(size)
        view[size - 1] = 7
        view.release()
        assert memoryview(buf)[size - 1] == 7
    finally:
        buf.close()
    assert buf.closed


@pytest.mark.parametrize("size", [0, -1])
def test_aligned_buffer_rejects_bad_size(mod: ModuleType, size: int) -> None:
    with pytest.raises(ValueError):
        mod.AlignedBuffer(size)


def test_aligned_buffer_close_with_view_raises_then_closes(mod: ModuleType) -> None:
    buf = mod.AlignedBuffer(PAGE)
    view = memoryview(buf)
    with pytest.raises(BufferError):
        buf.close()
    view.release()
    buf.close()
    buf.close()  # idempotent
    with pytest.raises(ValueError):
        memoryview(buf)


def test_pwrite_pread_round_trip(mod: ModuleType, direct_fd: tuple[int, str]) -> None:
    fd, path = direct_fd
    size = 3 * PAGE
    src = mod.AlignedBuffer(size)
    dst = mod.AlignedBuffer(size)
    try:
        payload = os.urandom(size)
        assert mod.copy_into(src, 0, payload) == size
        assert mod.pwrite_full(fd, src, size, PAGE, path) == size
        assert os.path.getsize(path) == 4 * PAGE
        assert mod.pread_full(fd, dst, size, PAGE, path) == size
        assert mod.copy_out(dst, 0, size) == payload
        # Past the end: a short count, not an error.
        assert mod.pread_full(fd, dst, size, 2 * PAGE, path) == 2 * PAGE
        assert mod.pread_full(fd, dst, size, 10 * PAGE, path) == 0
    finally:
        src.close()
        dst.close()


def test_pread_full_stops_at_eof_of_unaligned_file(mod: ModuleType, tmp_path: Path) -> None:
    path = tmp_path / "short.bin"
    path.write_bytes(b"x" * 1000)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
    buf = mod.AlignedBuffer(PAGE)
    try:
        assert mod.pread_full(fd, buf, PAGE, 0, str(path)) == 1000
        assert mod.copy_out(buf, 0, 1000) == b"x" * 1000
    finally:
        buf.close()
        os.close(fd)


@pytest.mark.parametrize("func", ["pwrite_full", "pread_full"])
def test_io_errors_carry_errno_and_path(mod: ModuleType, func: str, tmp_path: Path) -> None:
    buf = mod.AlignedBuffer(PAGE)
    fd = os.open(tmp_path / "x", os.O_RDWR | os.O_CREAT)
    os.close(fd)  # a closed fd: EBADF
    try:
        with pytest.raises(OSError) as info:
            getattr(mod, func)(fd, buf, PAGE, 0, "/some/device")
        assert info.type is OSError
        assert info.value.errno == errno.EBADF
        assert info.value.filename == "/some/device"
        assert info.value.strerror == os.strerror(errno.EBADF)
    finally:
        buf.close()


def test_unaligned_direct_io_is_einval(mod: ModuleType, direct_fd: tuple[int, str]) -> None:
    fd, path = direct_fd
    buf = mod.AlignedBuffer(PAGE)
    try:
        with pytest.raises(OSError) as info:
            mod.pwrite_full(fd, buf, 100, 0, path)
        assert info.value.errno == errno.EINVAL
        assert info.value.filename == path
        with pytest.raises(OSError) as info:
            mod.pwrite_full(fd, buf, PAGE, -PAGE, path)
        assert info.value.errno == errno.EINVAL
    finally:
        buf.close()


def test_write_to_full_device_is_enospc(mod: ModuleType) -> None:
    fd = os.open("/dev/full", os.O_WRONLY)
    buf = mod.AlignedBuffer(PAGE)
    try:
        with pytest.raises(OSError) as info:
            mod.pwrite_full(fd, buf, PAGE, 0, "/dev/full")
        assert info.value.errno == errno.ENOSPC
        assert info.value.filename == "/dev/full"
    finally:
        buf.close()
        os.close(fd)


def test_span_checks(mod: ModuleType, direct_fd: tuple[int, str]) -> None:
    fd, path = direct_fd
    buf = mod.AlignedBuffer(PAGE)
    try:
        with pytest.raises(ValueError):
            mod.pwrite_full(fd, buf, PAGE + 1, 0, path)
        with pytest.raises(ValueError):
            mod.pread_full(fd, buf, -1, 0, path)
        with pytest.raises(ValueError):
            mod.copy_into(buf, PAGE - 1, b"ab")
        with pytest.raises(ValueError):
            mod.copy_out(buf, 10, PAGE + 1)
        with pytest.raises(ValueError):
            mod.fill_zero(buf, -1, 3)
        with pytest.raises(ValueError):
            mod.is_zero(buf, PAGE + 1)
        with pytest.raises(TypeError):
            mod.pread_full(fd, b"read-only", 4, 0, path)
    finally:
        buf.close()


@pytest.mark.parametrize("length", [0, 1, 7, 8, 15, 16, 17, 4095, 4096, 1 << 20])
def test_is_zero(mod: ModuleType, length: int) -> None:
    buf = mod.AlignedBuffer(max(length, 1) + 8)
    try:
        assert mod.is_zero(buf, length)
        if length:
            for where in {0, length // 2, length - 1}:
                mod.copy_into(buf, where, b"\x01")
                assert not mod.is_zero(buf, length)
                mod.fill_zero(buf, where, where + 1)
                assert mod.is_zero(buf, length)
        # A non-zero byte after `length` does not count.
        mod.copy_into(buf, length, b"\xff")
        assert mod.is_zero(buf, length)
    finally:
        buf.close()


def test_copy_into_takes_any_bytes_like(mod: ModuleType) -> None:
    buf = mod.AlignedBuffer(64)
    try:
        assert mod.copy_into(buf, 0, b"abc") == 3
        assert mod.copy_into(buf, 3, bytearray(b"de")) == 2
        assert mod.copy_into(buf, 5, memoryview(b"xfgx")[1:3]) == 2
        assert mod.copy_into(buf, 7, np.array([0x68696A6B], dtype="<u4")) == 4
        assert mod.copy_into(buf, 11, b"") == 0
        assert mod.copy_out(buf, 0, 12) == b"abcdefgkjih\x00"
        mod.fill_zero(buf, 1, 3)
        assert mod.copy_out(buf, 0, 4) == b"a\x00\x00d"
        assert mod.copy_out(buf, 5, 5) == b""
    finally:
        buf.close()


def test_both_cores_agree_on_errors(tmp_path: Path) -> None:
    """Same exception type, errno, strerror and filename from both cores."""
    if "compiled" not in chunkio.available_cores() and not os.environ.get(
        "DATERA_GLANCE_REQUIRE_EXTENSIONS"
    ):
        pytest.skip("compiled core not built")
    compiled = chunkio.get_copier("compiled").core
    results = []
    for mod in (compiled, _chunkio_py):
        buf = mod.AlignedBuffer(PAGE)
        fd = os.open(tmp_path / "ro", os.O_RDONLY | os.O_CREAT)
        try:
            with pytest.raises(OSError) as info:
                mod.pwrite_full(fd, buf, PAGE, 0, "p")  # read-only fd: EBADF
            results.append((type(info.value), info.value.args, info.value.filename))
        finally:
            os.close(fd)
            buf.close()
    assert results[0] == results[1]
    assert results[0][1][0] == errno.EBADF


@pytest.fixture
def image(tmp_path: Path) -> Iterator[tuple[int, str, bytes]]:
    """A 3 MiB + 512 random file opened with O_DIRECT (block size 4096)."""
    data = random.Random(5).randbytes(3 * units.Mi + 512)
    path = tmp_path / "img"
    path.write_bytes(data)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
    try:
        yield fd, str(path), data
    finally:
        os.close(fd)


@pytest.mark.parametrize(
    ("offset", "length"),
    [(0, 1), (1, 4094), (4095, 2), (0, 4096), (100, 8192), (512, 3 * units.Mi), (7, units.Mi)],
)
def test_read_chunk_any_alignment(
    mod: ModuleType, image: tuple[int, str, bytes], offset: int, length: int
) -> None:
    fd, path, data = image
    with mod.AlignedBuffer(length + 2 * PAGE) as bounce:
        for chunk in (None, mod.unfilled(length)):
            got = mod.read_chunk(fd, bounce, offset, length, 4096, path, chunk)
            assert type(got) is bytes and got == data[offset : offset + length]
            assert chunk is None or got is chunk  # filled in place, as unfilled() promised


def test_read_chunk_past_the_end_is_eoferror(
    mod: ModuleType, image: tuple[int, str, bytes]
) -> None:
    fd, path, data = image
    with mod.AlignedBuffer(3 * PAGE) as bounce:
        for offset in (len(data) - 10, len(data), len(data) - 5000):
            with pytest.raises(EOFError, match="short read"):
                mod.read_chunk(fd, bounce, offset, 8192, 4096, path)


def test_read_chunk_from_a_buffered_fd(mod: ModuleType, image: tuple[int, str, bytes]) -> None:
    _, path, data = image
    buffered = os.open(path, os.O_RDONLY)
    try:
        with mod.AlignedBuffer(70_000) as bounce:
            assert mod.read_chunk(buffered, bounce, 13, 70_000, 1, path) == data[13:70_013]
    finally:
        os.close(buffered)


def test_read_chunk_rejects_a_small_bounce_and_other_chunks(
    mod: ModuleType, image: tuple[int, str, bytes]
) -> None:
    fd, path, _ = image
    with mod.AlignedBuffer(2 * PAGE) as bounce:
        with pytest.raises(ValueError, match="cannot hold"):
            mod.read_chunk(fd, bounce, 1, 2 * PAGE, 4096, path)  # spans three blocks
        for offset, length in ((0, 0), (-1, 10), (0, -5)):
            with pytest.raises(ValueError):
                mod.read_chunk(fd, bounce, offset, length, 4096, path)
        for not_a_chunk in (bytearray(10), b"short", "text"):
            with pytest.raises(TypeError):
                mod.read_chunk(fd, bounce, 0, 10, 4096, path, not_a_chunk)
    for bad in (0, -1):
        with pytest.raises(ValueError):
            mod.unfilled(bad)


def _mapping(address: int) -> dict[str, str]:
    """The /proc/self/smaps entry of the mapping holding ``address``: its permissions
    (``perms``) and its counters (``AnonHugePages`` etc., in kB)."""
    entry: dict[str, str] = {}
    found = False
    with open("/proc/self/smaps") as f:
        for line in f:
            head = line.split()
            if "-" in head[0] and len(head) >= 5 and not head[0].endswith(":"):
                if found:
                    break
                start, end = (int(x, 16) for x in head[0].split("-"))
                found = start <= address < end
                entry = {"perms": head[1]}
            elif found:
                entry[head[0].rstrip(":")] = head[1]
    assert found, f"no mapping holds {address:#x}"
    return entry


def test_big_buffers_are_private_memory_on_huge_pages(mod: ModuleType) -> None:
    """Device reads into huge-page memory ran twice as fast here as into small pages (fewer
    DMA segments), so the I/O buffers ask for them. Shared anonymous memory is shmem and gets
    none from the advice (the mistake that made them look unavailable here): the mapping must
    be private. The compiled core places buffers on a huge page boundary itself; the twin
    relies on the kernel doing so, which Linux does for mappings of whole huge pages."""
    size = 2 * mod.HUGE_PAGE_SIZE
    with mod.AlignedBuffer(size) as buf:
        address = _address(buf)
        entry = _mapping(address)
        assert entry["perms"].endswith("p"), entry  # private, not shared
        aligned = address % mod.HUGE_PAGE_SIZE == 0
        assert aligned or mod is _chunkio_py
        if host.thp_mode() in ("always", "madvise") and aligned:
            assert int(entry["AnonHugePages"]) >= mod.HUGE_PAGE_SIZE // 1024, entry
        with memoryview(buf) as view:
            assert view.tobytes() == bytes(size)  # zero-filled like any other
