"""The core functions (compiled and pure-Python twin) give the same results and errors."""

from __future__ import annotations

import ctypes
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

from datera_glance import _chunkio_py, chunkio

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


def _data_address(chunk: bytes) -> int:
    """Where a ``bytes`` object's data starts (ctypes points at it, no copy)."""
    return ctypes.cast(ctypes.c_char_p(chunk), ctypes.c_void_p).value or 0


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
    allocator = mod.ChunkAllocator(PAGE)
    for exact in (True, False):
        chunk = allocator.take(offset, length, exact)
        n = len(chunk)
        assert 0 < n <= length and (n == length or not exact)
        got = mod.read_chunk(fd, chunk, offset, 4096, path)
        assert type(got) is bytes
        assert got == data[offset : offset + n]


def test_chunks_after_a_non_exact_one_are_aligned_for_direct_reads(
    image: tuple[int, str, bytes],
) -> None:
    """The compiled allocator ends a chunk where the next one's memory meets the device
    offset modulo the page, so O_DIRECT fills the next chunk in place."""
    mod = chunkio.get_copier("compiled").core if "compiled" in chunkio.available_cores() else None
    if mod is None:
        pytest.skip("compiled core not built")
    fd, path, data = image
    allocator = mod.ChunkAllocator(PAGE)
    pos, chunks = 3, []
    first = allocator.take(pos, 256 * units.Ki, True)
    chunks.append((pos, mod.read_chunk(fd, first, pos, 4096, path)))
    pos += len(first)
    for _ in range(8):
        chunk = allocator.take(pos, 256 * units.Ki, False)
        assert 256 * units.Ki - PAGE < len(chunk) <= 256 * units.Ki
        chunks.append((pos, mod.read_chunk(fd, chunk, pos, 4096, path)))
        pos += len(chunk)
    last = allocator.take(pos, 1000, True)
    chunks.append((pos, mod.read_chunk(fd, last, pos, 4096, path)))
    aligned = [(_data_address(c) - p) % PAGE == 0 for p, c in chunks]
    assert all(aligned[2:]), aligned  # the first two are wherever malloc put them
    assert b"".join(c for _, c in chunks) == data[3 : pos + 1000]


@pytest.mark.parametrize("offset", [0, 1, 13, 511, 4095, 4096, 4097, 1_000_003])
@pytest.mark.parametrize("length", [3 * PAGE, 70_001, units.Mi])
def test_split_range_reads_any_range_in_two_pieces(
    mod: ModuleType, image: tuple[int, str, bytes], offset: int, length: int
) -> None:
    fd, path, data = image
    lead, rest = mod.split_range(offset, length, PAGE)
    lead, rest = mod.read_split(fd, lead, rest, offset, 4096, path)
    assert type(rest) is bytes and (lead is None or type(lead) is bytes)
    got = (lead or b"") + rest
    assert got == data[offset : offset + length]
    assert lead is None or 0 < len(lead) < PAGE


def test_split_range_puts_the_bulk_where_a_direct_read_fills_it(
    image: tuple[int, str, bytes],
) -> None:
    """The compiled core makes the rest first and gives the lead the bytes up to where the
    rest's address meets the device offset modulo the page: the device reads the rest in place
    (the lead and the partial blocks come from a bounce buffer in the same preadv)."""
    if "compiled" not in chunkio.available_cores():
        pytest.skip("compiled core not built")
    mod = chunkio.get_copier("compiled").core
    fd, path, data = image
    for offset in range(1, 40_000, 997):
        lead, rest = mod.split_range(offset, units.Mi, PAGE)
        start = offset + (len(lead) if lead is not None else 0)
        assert (_data_address(rest) - start) % PAGE == 0, offset
        lead, rest = mod.read_split(fd, lead, rest, offset, 4096, path)
        assert (lead or b"") + rest == data[offset : offset + units.Mi]


def test_split_range_leaves_short_and_buffered_ranges_whole(
    mod: ModuleType, image: tuple[int, str, bytes]
) -> None:
    fd, path, data = image
    for offset, length in ((5, 1), (4000, PAGE + 1)):  # too short to gain from a split
        lead, rest = mod.split_range(offset, length, PAGE)
        assert lead is None and len(rest) == length
        assert mod.read_split(fd, lead, rest, offset, 4096, path) == (None, data[offset:][:length])
    buffered = os.open(path, os.O_RDONLY)
    try:
        lead, rest = mod.split_range(77, 100_000, 1)  # grain 1: every address agrees
        assert lead is None
        assert mod.read_split(buffered, lead, rest, 77, 1, path)[1] == data[77 : 77 + 100_000]
    finally:
        os.close(buffered)


def test_read_split_past_the_end_and_wrong_objects(
    mod: ModuleType, image: tuple[int, str, bytes]
) -> None:
    fd, path, data = image
    for offset in (len(data) - 10, len(data) - 70_000, len(data)):
        lead, rest = mod.split_range(offset, 80_000, PAGE)
        with pytest.raises(EOFError, match="short read"):
            mod.read_split(fd, lead, rest, offset, 4096, path)
    with pytest.raises(TypeError):
        mod.read_split(fd, bytearray(3), mod.split_range(0, 5, PAGE)[1], 0, 4096, path)
    for bad in ((0, 0, PAGE), (0, 10, 0), (-1, 10, PAGE)):
        with pytest.raises(ValueError):
            mod.split_range(*bad)


def test_read_chunk_past_the_end_is_eoferror(
    mod: ModuleType, image: tuple[int, str, bytes]
) -> None:
    fd, path, data = image
    allocator = mod.ChunkAllocator(PAGE)
    for offset in (len(data) - 10, len(data), len(data) - 5000):
        with pytest.raises(EOFError, match="short read"):
            mod.read_chunk(fd, allocator.take(offset, 8192, True), offset, 4096, path)


def test_read_chunk_with_a_bounce_buffer_and_buffered_fd(
    mod: ModuleType, image: tuple[int, str, bytes]
) -> None:
    fd, path, data = image
    allocator = mod.ChunkAllocator(PAGE)
    with mod.AlignedBuffer(units.Mi + 4096) as bounce:
        chunk = allocator.take(4097, units.Mi, True)
        assert mod.read_chunk(fd, chunk, 4097, 4096, path, bounce) == data[4097 : 4097 + units.Mi]
    buffered = os.open(path, os.O_RDONLY)
    try:
        chunk = allocator.take(13, 70_000, True)
        assert mod.read_chunk(buffered, chunk, 13, 1, path) == data[13 : 13 + 70_000]
    finally:
        os.close(buffered)


def test_read_chunk_rejects_other_objects(mod: ModuleType, image: tuple[int, str, bytes]) -> None:
    fd, path, _ = image
    for not_a_chunk in (bytearray(10), memoryview(b"x"), "text"):
        with pytest.raises(TypeError):
            mod.read_chunk(fd, not_a_chunk, 0, 4096, path)
    for bad in (0, -1):
        with pytest.raises(ValueError):
            mod.ChunkAllocator(bad)
        with pytest.raises(ValueError):
            mod.ChunkAllocator(PAGE).take(0, bad, True)
