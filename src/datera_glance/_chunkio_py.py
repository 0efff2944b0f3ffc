"""Pure-Python twin of the compiled core ``datera_glance._chunkio``.

Same functions, same results, same exceptions; used when the extension is not built or
``DATERA_GLANCE_NO_EXTENSIONS=1``. Knows nothing of Glance or EDF: file descriptors,
offsets, lengths and buffers only.
"""

from __future__ import annotations

import contextlib
import errno
import mmap
import os
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from typing_extensions import Buffer

__all__ = [
    "CORE_NAME",
    "HUGE_PAGE_SIZE",
    "PAGE_SIZE",
    "AlignedBuffer",
    "copy_into",
    "copy_out",
    "fill_zero",
    "is_zero",
    "pread_full",
    "pwrite_full",
    "read_chunk",
    "unfilled",
]

CORE_NAME = "python"
PAGE_SIZE = mmap.PAGESIZE
#: Buffers of at least this size ask for transparent huge pages (see the compiled core).
HUGE_PAGE_SIZE = 2 * 1024 * 1024


class AlignedBuffer(mmap.mmap):
    """A zero-filled, page-aligned, writable buffer of ``size`` bytes, on huge pages where
    the kernel has them and places the mapping on a huge page boundary (Linux does for
    anonymous mappings of whole huge pages; the compiled core aligns them itself).

    An anonymous mapping is always page-aligned, which is what O_DIRECT needs. Private, not
    shared: shared anonymous memory is shmem, which gets no huge pages from the advice.
    ``close()`` releases the memory at once (``BufferError`` while a view is still alive).
    """

    def __new__(cls, size: int) -> AlignedBuffer:
        if size <= 0:
            raise ValueError(f"buffer size must be positive, not {size}")
        buf = super().__new__(cls, -1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        if size >= HUGE_PAGE_SIZE:
            # A kernel without transparent huge pages refuses: small pages then.
            with contextlib.suppress(OSError):
                buf.madvise(mmap.MADV_HUGEPAGE)
        buf[::PAGE_SIZE] = bytes(-(-size // PAGE_SIZE))  # fault every page in now, not in I/O
        return buf

    def __init__(self, size: int) -> None:
        # mmap.__init__ is object.__init__; the mapping is made in __new__.
        pass


def _check_span(nbytes: int, start: int, length: int) -> None:
    if start < 0 or length < 0 or start + length > nbytes:
        raise ValueError(f"span [{start}, {start + length}) outside buffer of {nbytes} bytes")


def pwrite_full(fd: int, buf: Buffer, length: int, offset: int, path: str) -> int:
    """Write ``buf[:length]`` at ``offset``, looping on short writes.

    :returns: ``length``.
    :raises OSError: with the errno and ``path`` as filename (ENOSPC if the target stops
        taking bytes).
    """
    with memoryview(buf) as view:
        _check_span(view.nbytes, 0, length)
        done = 0
        while done < length:
            try:
                # os.pwrite retries EINTR itself (PEP 475) and drops the GIL around the call.
                n = os.pwrite(fd, view[done:length], offset + done)
            except OSError as exc:
                raise OSError(exc.errno, exc.strerror, path) from None
            if n == 0:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)
            done += n
    return length


def pread_full(fd: int, buf: Buffer, length: int, offset: int, path: str) -> int:
    """Read up to ``length`` bytes at ``offset`` into ``buf``, looping on short reads.

    :returns: the byte count read; less than ``length`` only at end of file.
    :raises OSError: with the errno and ``path`` as filename.
    """
    with memoryview(buf) as view:
        _check_span(view.nbytes, 0, length)
        if view.readonly:
            raise TypeError("pread_full needs a writable buffer")
        done = 0
        while done < length:
            try:
                n = os.preadv(fd, [view[done:length]], offset + done)
            except OSError as exc:
                raise OSError(exc.errno, exc.strerror, path) from None
            if n == 0:
                break
            done += n
    return done


def is_zero(buf: Buffer, length: int) -> bool:
    """Whether the first ``length`` bytes of ``buf`` are all zero."""
    with memoryview(buf) as view:
        _check_span(view.nbytes, 0, length)
        words = length // 8
        # u64 max() was the fastest numpy zero scan measured (against sum, any, count_nonzero).
        if words and np.frombuffer(view, np.uint64, count=words).max() != 0:
            return False
        tail = length - words * 8
        return not tail or not any(view[words * 8 : length])


def copy_into(buf: Buffer, pos: int, data: Buffer) -> int:
    """Copy all of ``data`` into ``buf`` at ``pos``.

    :returns: the byte count copied.
    :raises ValueError: if it does not fit.
    """
    with memoryview(buf) as view, memoryview(data) as src:
        if src.format != "B" or src.ndim != 1:
            src = src.cast("B")
        n = src.nbytes
        _check_span(view.nbytes, pos, n)
        view[pos : pos + n] = src
    return n


def copy_out(buf: Buffer, start: int, stop: int) -> bytes:
    """``bytes`` of ``buf[start:stop]``."""
    with memoryview(buf) as view:
        _check_span(view.nbytes, start, stop - start)
        return view[start:stop].tobytes()


def fill_zero(buf: Buffer, start: int, stop: int) -> None:
    """Zero ``buf[start:stop]`` (the padding of a last partial block)."""
    with memoryview(buf) as view:
        _check_span(view.nbytes, start, stop - start)
        view[start:stop] = bytes(stop - start)


def unfilled(length: int) -> None:
    """Python cannot fill a ``bytes`` in place: ``read_chunk`` makes its own (None here)."""
    if length <= 0:
        raise ValueError(f"chunk length must be positive, not {length}")


def read_chunk(
    fd: int,
    bounce: AlignedBuffer,
    offset: int,
    length: int,
    block_size: int,
    path: str,
    chunk: None = None,
) -> bytes:
    """``bytes`` of ``[offset, offset + length)``: the aligned span around it read into
    ``bounce`` in one go, then copied out (``chunk``: ``unfilled``'s None).

    :raises ValueError: ``bounce`` cannot hold the aligned span.
    :raises TypeError: ``chunk`` is not None.
    :raises EOFError: the file ends inside the range.
    :raises OSError: with the errno and ``path`` as filename.
    """
    if block_size <= 0 or offset < 0 or length <= 0:
        raise ValueError("block_size and length must be positive and offset not negative")
    if chunk is not None:
        raise TypeError("the Python core fills no chunk in place; pass None from unfilled()")
    head = offset % block_size
    span = -(-(head + length) // block_size) * block_size
    if len(bounce) < span:
        raise ValueError(f"bounce buffer of {len(bounce)} bytes cannot hold a span of {span}")
    got = pread_full(fd, bounce, span, offset - head, path)
    if got < head + length:
        raise EOFError(f"{path}: short read at offset {offset + max(got - head, 0)}")
    return copy_out(bounce, head, head + length)
