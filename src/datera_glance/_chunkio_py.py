"""Pure-Python twin of the compiled core ``datera_glance._chunkio``.

Same functions, same results, same exceptions; used when the extension is not built or
``DATERA_GLANCE_NO_EXTENSIONS=1``. Knows nothing of Glance or EDF: file descriptors,
offsets, lengths and buffers only.
"""

from __future__ import annotations

import errno
import mmap
import os
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from typing_extensions import Buffer

__all__ = [
    "CORE_NAME",
    "PAGE_SIZE",
    "ZERO_COPY_READS",
    "AlignedBuffer",
    "ChunkAllocator",
    "copy_into",
    "copy_out",
    "fill_zero",
    "is_zero",
    "pread_full",
    "pwrite_full",
    "read_chunk",
    "read_split",
    "split_range",
]

CORE_NAME = "python"
PAGE_SIZE = mmap.PAGESIZE
#: Python cannot read into a ``bytes`` object: chunks are copied out of an aligned buffer.
ZERO_COPY_READS = False


class AlignedBuffer(mmap.mmap):
    """A zero-filled, page-aligned, writable buffer of ``size`` bytes.

    An anonymous mapping is always page-aligned, which is what O_DIRECT needs. ``close()``
    releases the memory at once (``BufferError`` while a view of it is still alive).
    """

    def __new__(cls, size: int) -> AlignedBuffer:
        if size <= 0:
            raise ValueError(f"buffer size must be positive, not {size}")
        return super().__new__(cls, -1, size)

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


class _Unfilled:
    """A chunk not read yet: only its length (Python cannot fill a ``bytes`` in place)."""

    __slots__ = ("nbytes",)

    def __init__(self, nbytes: int) -> None:
        self.nbytes = nbytes

    def __len__(self) -> int:
        return self.nbytes


class ChunkAllocator:
    """Unfilled chunks for consecutive ranges of a device; every one is ``length`` long.

    The compiled twin sizes chunks so that the next one can be read without a copy; here
    every chunk is copied anyway, so ``grain`` and ``exact`` change nothing.
    """

    def __init__(self, grain: int) -> None:
        if grain <= 0:
            raise ValueError(f"grain must be positive, not {grain}")

    def take(self, start: int, length: int, exact: bool) -> _Unfilled:
        if length <= 0:
            raise ValueError(f"chunk length must be positive, not {length}")
        return _Unfilled(length)


def read_chunk(
    fd: int,
    chunk: _Unfilled,
    offset: int,
    block_size: int,
    path: str,
    bounce: AlignedBuffer | None = None,
) -> bytes:
    """``bytes`` of ``[offset, offset + len(chunk))``, read through an aligned buffer:
    ``bounce`` when it holds the aligned span, else one of its own.

    :raises EOFError: the file ends inside the range.
    :raises OSError: with the errno and ``path`` as filename.
    """
    if not isinstance(chunk, _Unfilled):
        raise TypeError("read_chunk fills a chunk from ChunkAllocator.take")
    if block_size <= 0 or offset < 0:
        raise ValueError("block_size must be positive and offset not negative")
    n = chunk.nbytes
    head = offset % block_size
    span = -(-(head + n) // block_size) * block_size
    own = bounce is None or len(bounce) < span
    buf = AlignedBuffer(span) if own else bounce
    assert buf is not None
    try:
        got = pread_full(fd, buf, span, offset - head, path)
        if got < head + n:
            raise EOFError(f"{path}: short read at offset {offset + max(got - head, 0)}")
        with memoryview(buf) as view:
            return view[head : head + n].tobytes()
    finally:
        if own:
            buf.close()


def split_range(start: int, length: int, grain: int) -> tuple[None, _Unfilled]:
    """``(lead, rest)`` for reading ``[start, start + length)`` in one call: here always
    ``(None, whole range)``, since every chunk is copied anyway (the compiled twin splits off
    a lead so that the rest can be read without a copy)."""
    if length <= 0 or grain <= 0 or start < 0:
        raise ValueError("length and grain must be positive and start not negative")
    return None, _Unfilled(length)


def read_split(
    fd: int,
    lead: _Unfilled | None,
    rest: _Unfilled,
    offset: int,
    block_size: int,
    path: str,
    bounce: AlignedBuffer | None = None,
) -> tuple[bytes | None, bytes]:
    """``split_range``'s pieces filled with the range starting at ``offset``, in one read."""
    if lead is None:
        return None, read_chunk(fd, rest, offset, block_size, path, bounce)
    if not isinstance(lead, _Unfilled):
        raise TypeError("read_split fills the chunks of split_range")
    both = read_chunk(fd, _Unfilled(lead.nbytes + len(rest)), offset, block_size, path, bounce)
    return both[: lead.nbytes], both[lead.nbytes :]
