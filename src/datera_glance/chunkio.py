"""The streaming copier: image bytes between a stream and a block device, with O_DIRECT.

``write_stream`` runs a pipeline: the calling thread fills page-aligned buffers from the
source; every filled buffer goes to one thread per hasher (and the verifier) and to a pool of
``depth`` writer threads; it returns to the free ring when all of them are done with it. The
hashes therefore run on both cores at once and up to ``depth`` writes are queued on the
device, while memory stays at ``depth + 2`` buffers. ``read_range`` keeps ``depth`` reads in
flight on ``depth`` reader threads, each with its own buffer, and yields the bytes in order.
Threads hand buffers over through ``queue.SimpleQueue`` only (no executor, futures or
condition broadcasts): at small buffer sizes those hand-offs are most of the CPU cost.

The syscalls, the zero scan and the copies into aligned memory live in a core module: the
compiled ``datera_glance._chunkio`` unless ``DATERA_GLANCE_NO_EXTENSIONS=1``, else its
pure-Python twin ``datera_glance._chunkio_py``. ``CORE`` names the default core.
"""

from __future__ import annotations

import errno
import fcntl
import importlib
import io
import logging
import os
import queue
import stat
import struct
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol

from datera_glance import _chunkio_py

if TYPE_CHECKING:
    from typing import TypeAlias

    from typing_extensions import Buffer

__all__ = [
    "CORE",
    "Copier",
    "DeviceFull",
    "DirectIOUnsupported",
    "KiB",
    "MiB",
    "SizeMismatch",
    "available_cores",
    "get_copier",
    "read_range",
    "write_stream",
]

LOG = logging.getLogger(__name__)

KiB = 1024
MiB = 1024 * KiB

# linux/fs.h: logical sector size (int) and device size in bytes (u64).
_BLKSSZGET = 0x1268
_BLKGETSIZE64 = 0x80081272
# O_DIRECT on a regular file needs the underlying device's logical block size: 4096 is safe
# for every device in use (512 and 4096 both occur).
_FILE_BLOCK_SIZE = 4096
# skip_zeros looks at blocks this big: small enough to find the holes of a raw image, big
# enough that the writes around them stay efficient. A multiple of every block size.
_ZERO_GRAIN = 64 * KiB


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


_compiled: ModuleType | None
_compiled_error: ImportError | None = None
try:
    _compiled = importlib.import_module("datera_glance._chunkio")
    if getattr(_compiled, "CORE_NAME", None) != "compiled":
        raise ImportError(f"{_compiled.__file__} is a stale build; rebuild the extension")
except ImportError as exc:  # not built: the python core still works
    _compiled = None
    _compiled_error = exc

if _compiled is None and _env_flag("DATERA_GLANCE_REQUIRE_EXTENSIONS"):
    raise ImportError(
        "DATERA_GLANCE_REQUIRE_EXTENSIONS=1 but the compiled copier core "
        f"datera_glance._chunkio did not load ({_compiled_error}); build it with "
        "'python setup.py build_ext --inplace' or reinstall the package"
    ) from _compiled_error

#: The default core: ``"compiled"`` or ``"python"``.
CORE: str = (
    "compiled"
    if _compiled is not None and not _env_flag("DATERA_GLANCE_NO_EXTENSIONS")
    else "python"
)
LOG.debug("copier core: %s (compiled available: %s)", CORE, _compiled is not None)


class SizeMismatch(ValueError):
    """The source gave more or fewer bytes than the announced ``size``."""


class DeviceFull(OSError):
    """The image does not fit: ENOSPC, or running past the end of the device without ``grow``."""


class DirectIOUnsupported(OSError):
    """The path refuses O_DIRECT (EINVAL) and buffered I/O was not allowed."""


class _Updatable(Protocol):
    def update(self, data: Buffer, /) -> Any: ...


class _Readable(Protocol):
    def read(self, n: int, /) -> Buffer: ...


if TYPE_CHECKING:
    Source: TypeAlias = _Readable | Iterable[Buffer]
    Grow: TypeAlias = Callable[[int], str | None]


def available_cores() -> tuple[str, ...]:
    """The cores that can be loaded here, compiled first."""
    return ("compiled", "python") if _compiled is not None else ("python",)


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


# --------------------------------------------------------------------------- targets


@dataclass
class _Target:
    """An open device or file: its fd and what O_DIRECT needs to know about it."""

    path: str
    fd: int
    direct: bool
    block_size: int  # I/O offsets and lengths are multiples of this
    capacity: int | None  # bytes; None: no end (character devices)
    is_block: bool
    is_regular: bool

    @classmethod
    def open(cls, path: str, *, write: bool, allow_buffered: bool) -> _Target:
        flags = (os.O_WRONLY if write else os.O_RDONLY) | os.O_CLOEXEC
        direct = True
        try:
            fd = os.open(path, flags | os.O_DIRECT)
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                raise
            if not allow_buffered:
                raise DirectIOUnsupported(
                    errno.EINVAL,
                    "refuses O_DIRECT (pass allow_buffered=True for buffered I/O)",
                    path,
                ) from None
            LOG.warning("%s refuses O_DIRECT; using buffered I/O", path)
            fd = os.open(path, flags)
            direct = False
        try:
            st = os.fstat(fd)
            is_block = stat.S_ISBLK(st.st_mode)
            is_regular = stat.S_ISREG(st.st_mode)
            capacity: int | None = None
            block_size = 1
            if is_block:
                raw = fcntl.ioctl(fd, _BLKGETSIZE64, bytes(8))
                capacity = struct.unpack("Q", raw)[0]
                raw = fcntl.ioctl(fd, _BLKSSZGET, bytes(4))
                block_size = struct.unpack("i", raw)[0]
            elif is_regular:
                capacity = st.st_size
                block_size = _FILE_BLOCK_SIZE
            if not direct:
                block_size = 1  # the page cache takes any offset and length
        except BaseException:
            os.close(fd)
            raise
        return cls(path, fd, direct, block_size, capacity, is_block, is_regular)

    def fsync(self) -> None:
        try:
            os.fsync(self.fd)
        except OSError as exc:
            # Character devices (buffered mode only) have nothing to sync.
            if exc.errno != errno.EINVAL or self.is_block or self.is_regular:
                raise OSError(exc.errno, exc.strerror, self.path) from None

    def close(self) -> None:
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            os.close(fd)


def _check_buffer_args(buffer_size: int, depth: int) -> None:
    if buffer_size <= 0 or buffer_size % _FILE_BLOCK_SIZE:
        raise ValueError(f"buffer_size must be a positive multiple of 4096, not {buffer_size}")
    if depth < 1:
        raise ValueError(f"depth must be at least 1, not {depth}")


def _release_buffers(buffers: list[Any]) -> None:
    for buf in buffers:
        try:
            buf.close()
        except BufferError:
            # A consumer still holds a view; the memory goes with the last reference.
            LOG.debug("aligned buffer still exported at close; left to the collector")
    buffers.clear()


# --------------------------------------------------------------------------- write pipeline


class _Slot:
    """One aligned buffer of the ring and the job it is on.

    A slot is in at most one job at a time, so the job lives on the slot: nothing is
    allocated per buffer. ``refs`` counts the consumers still holding it; the last one to
    let go puts it back on the free queue.
    """

    __slots__ = ("buf", "nbytes", "padded", "pos", "refs", "target", "view")

    def __init__(self, buf: Any) -> None:
        self.buf = buf
        self.view = memoryview(buf)
        self.refs = 0
        self.nbytes = 0  # image bytes in the buffer
        self.padded = 0  # bytes to write: nbytes rounded up to the block size
        self.pos = 0  # device offset
        self.target: _Target | None = None


_STOP = None


class _Aborted(Exception):
    """Internal: a worker failed; the main thread re-raises the worker's error."""


class _WritePipeline:
    """The worker threads and the buffer ring of one ``write_stream``.

    Hand-offs are ``SimpleQueue`` puts and gets only (C code, one wake-up per buffer and
    consumer): filled slots go out on per-consumer queues, and the last consumer of a slot
    puts it on ``free_q``. A worker's error also goes on ``free_q`` (as ``_STOP``), so the
    main thread never waits on anything else.
    """

    def __init__(
        self,
        core: ModuleType,
        consumers: list[_Updatable],
        *,
        buffer_size: int,
        depth: int,
        skip_zeros: bool,
    ) -> None:
        self.core = core
        self.consumers = consumers
        self.buffer_size = buffer_size
        self.depth = depth
        self.skip_zeros = skip_zeros
        self.lock = threading.Lock()  # guards Slot.refs and error
        self.free_q: queue.SimpleQueue[_Slot | None] = queue.SimpleQueue()
        self.hand: list[_Slot] = []  # free slots the main thread holds
        self.error: BaseException | None = None
        self.buffers: list[Any] = []
        self.slots: list[_Slot] = []
        self.threads: list[threading.Thread] = []
        # One queue per hasher (in order), one shared by the writer pool (any order).
        self.write_q: queue.SimpleQueue[_Slot | None] = queue.SimpleQueue()
        self.consumer_qs: list[queue.SimpleQueue[_Slot | None]] = []

    # -- lifecycle

    def start(self) -> None:
        for _ in range(self.depth + 2):
            buf = self.core.AlignedBuffer(self.buffer_size)
            self.buffers.append(buf)
            self.slots.append(_Slot(buf))
        self.hand.extend(self.slots)
        for i, consumer in enumerate(self.consumers):
            q: queue.SimpleQueue[_Slot | None] = queue.SimpleQueue()
            self.consumer_qs.append(q)
            self._spawn(f"chunkio-hash-{i}", self._consume_loop, q, consumer)
        for i in range(self.depth):
            self._spawn(f"chunkio-write-{i}", self._write_loop)

    def _spawn(self, name: str, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        thread.start()
        self.threads.append(thread)

    def stop(self, *, abort: bool) -> None:
        """Stop and join every thread, then release the buffers. Safe after any error.

        With ``abort``, buffers still queued are neither written nor hashed.
        """
        if abort:
            self._fail(_Aborted("write_stream failed"))
        for q in self.consumer_qs:
            q.put(_STOP)
        for _ in range(self.depth):
            self.write_q.put(_STOP)
        for thread in self.threads:
            thread.join()
        self.threads.clear()
        for slot in self.slots:
            slot.target = None
            slot.view.release()
        self.slots.clear()
        self.hand.clear()
        _release_buffers(self.buffers)

    # -- workers

    def _fail(self, exc: BaseException) -> None:
        with self.lock:
            if self.error is None:
                self.error = exc
        self.free_q.put(_STOP)  # wakes the main thread if it waits for a buffer

    def _release(self, slot: _Slot) -> None:
        with self.lock:
            slot.refs -= 1
            last = not slot.refs
        if last:
            self.free_q.put(slot)

    def _consume_loop(self, q: queue.SimpleQueue[_Slot | None], consumer: _Updatable) -> None:
        while (slot := q.get()) is not _STOP:
            try:
                if self.error is None:
                    with slot.view[: slot.nbytes] as data:
                        consumer.update(data)
            except BaseException as exc:
                self._fail(exc)
            finally:
                self._release(slot)

    def _write_loop(self) -> None:
        core = self.core
        while (slot := self.write_q.get()) is not _STOP:
            try:
                if self.error is None:
                    target = slot.target
                    assert target is not None
                    if self.skip_zeros:
                        self._write_nonzero(slot, target)
                    else:
                        core.pwrite_full(target.fd, slot.buf, slot.padded, slot.pos, target.path)
            except OSError as exc:
                if exc.errno in (errno.ENOSPC, errno.EFBIG):
                    exc = DeviceFull(exc.errno, exc.strerror, exc.filename)
                self._fail(exc)
            except BaseException as exc:
                self._fail(exc)
            finally:
                self._release(slot)

    def _write_nonzero(self, slot: _Slot, target: _Target) -> None:
        """Write only the runs of ``_ZERO_GRAIN`` blocks that are not all zero."""
        core = self.core
        view = slot.view
        padded = slot.padded
        start = -1  # first byte of the current non-zero run
        for lo in range(0, padded, _ZERO_GRAIN):
            hi = min(lo + _ZERO_GRAIN, padded)
            with view[lo:hi] as grain:
                zero = core.is_zero(grain, hi - lo)
            if not zero and start < 0:
                start = lo
            elif zero and start >= 0:
                with view[start:lo] as run:
                    core.pwrite_full(target.fd, run, lo - start, slot.pos + start, target.path)
                start = -1
        if start >= 0:
            with view[start:padded] as run:
                core.pwrite_full(target.fd, run, padded - start, slot.pos + start, target.path)

    # -- main thread

    def _raise_if_failed(self) -> None:
        if self.error is not None:
            raise _Aborted

    def _take(self) -> _Slot:
        """Wait for the next slot a worker gives back."""
        slot = self.free_q.get()
        if slot is None or self.error is not None:
            raise _Aborted
        return slot

    def get_free(self) -> _Slot:
        self._raise_if_failed()
        return self.hand.pop() if self.hand else self._take()

    def put_back(self, slot: _Slot) -> None:
        self.hand.append(slot)

    def dispatch(self, slot: _Slot, nbytes: int, padded: int, pos: int, target: _Target) -> None:
        self._raise_if_failed()
        slot.nbytes = nbytes
        slot.padded = padded
        slot.pos = pos
        slot.target = target
        # No worker sees the slot before the puts below, so refs needs no lock here.
        slot.refs = len(self.consumer_qs) + 1
        for q in self.consumer_qs:
            q.put(slot)
        self.write_q.put(slot)

    def drain(self, *, held: int = 0) -> None:
        """Wait until every buffer is back: all writes and all hashing done.

        ``held``: slots the main thread holds outside ``hand`` (one being filled).
        """
        while len(self.hand) + held < len(self.slots):
            self.hand.append(self._take())
        self._raise_if_failed()


class _Filler:
    """Fills aligned buffers from a ``read(n)`` object or an iterable of bytes-like chunks."""

    def __init__(self, core: ModuleType, source: Source, buffer_size: int) -> None:
        self.core = core
        self.buffer_size = buffer_size
        self.reader: Callable[[int], Buffer] | None = None
        self.readinto: Callable[[memoryview], int | None] | None = None
        self.chunks: Iterator[Buffer] | None = None
        read = getattr(source, "read", None)
        if isinstance(source, io.IOBase) and hasattr(source, "readinto"):
            # Files and BytesIO fill the aligned buffer directly: one copy less.
            self.readinto = source.readinto
        elif callable(read):
            self.reader = read
        else:
            self.chunks = iter(source)  # type: ignore[arg-type]
        self.leftover: memoryview | None = None
        self.eof = False

    def fill(self, slot: _Slot) -> int:
        """Copy up to one buffer of source bytes into the slot; fewer only at the end."""
        filled = 0
        size = self.buffer_size
        buf = slot.buf
        copy_into = self.core.copy_into
        while filled < size and not self.eof:
            if self.readinto is not None:
                with slot.view[filled:size] as free_part:
                    got = self.readinto(free_part)
                if got is None:
                    raise BlockingIOError(errno.EAGAIN, "non-blocking source has no data")
                if not got:
                    self.eof = True
                    break
                filled += got
                continue
            if self.leftover is None:
                if self.reader is not None:
                    # Never more than the room left: glance's reader refuses reads >= 128 MiB.
                    chunk = self.reader(size - filled)
                    if not chunk:
                        self.eof = True
                        break
                else:
                    try:
                        chunk = next(self.chunks)  # type: ignore[arg-type]
                    except StopIteration:
                        self.eof = True
                        break
                view = memoryview(chunk)
                if view.format != "B" or view.ndim != 1:
                    view = view.cast("B")
                if not view.nbytes:
                    continue
                # A reader that returns more than asked is kept for the next buffer.
                self.leftover = view
            view = self.leftover
            room = size - filled
            if view.nbytes <= room:
                filled += copy_into(buf, filled, view)
                self.leftover = None
            else:
                filled += copy_into(buf, filled, view[:room])
                self.leftover = view[room:]
        return filled


class _Writer:
    """One ``write_stream`` call: the main-thread loop around a ``_WritePipeline``."""

    def __init__(
        self,
        core: ModuleType,
        path: str,
        *,
        offset: int,
        size: int | None,
        grow: Grow | None,
        allow_buffered: bool,
    ) -> None:
        self.core = core
        self.path = path
        self.offset = offset
        self.size = size
        self.grow = grow
        self.allow_buffered = allow_buffered
        self.target: _Target | None = None

    def open(self) -> _Target:
        self.target = _Target.open(self.path, write=True, allow_buffered=self.allow_buffered)
        return self.target

    def close(self) -> None:
        if self.target is not None:
            self.target.close()
            self.target = None

    def ensure_room(self, pipe: _WritePipeline, pos: int, padded: int, written: int) -> _Target:
        """Make sure ``[pos, pos + padded)`` fits, growing the device if allowed."""
        target = self.target
        assert target is not None
        while target.capacity is not None and pos + padded > _round_up(
            target.capacity, target.block_size
        ):
            if self.grow is None:
                raise DeviceFull(
                    errno.ENOSPC,
                    f"image passes the end of the device ({target.capacity} bytes) at "
                    f"offset {pos + padded}",
                    target.path,
                )
            old_capacity = target.capacity
            # Hand-off: nothing in flight, data durable, device closed while the caller
            # resizes and reattaches it.
            pipe.drain(held=1)  # the buffer being placed
            target.fsync()
            self.close()
            new_path = self.grow(written)
            if new_path:
                self.path = new_path
            target = self.open()
            if target.capacity is not None and target.capacity <= old_capacity:
                raise DeviceFull(
                    errno.ENOSPC,
                    f"grow() did not enlarge the device ({target.capacity} bytes)",
                    target.path,
                )
            if pos % target.block_size:
                raise ValueError(f"offset {pos} not aligned to the new block size")
        return target

    def run(
        self,
        source: Source,
        consumers: list[_Updatable],
        *,
        buffer_size: int,
        depth: int,
        skip_zeros: bool,
    ) -> int:
        target = self.open()
        try:
            if self.offset % target.block_size:
                raise ValueError(
                    f"offset {self.offset} is not a multiple of the block size "
                    f"{target.block_size} of {self.path}"
                )
            if (
                self.size is not None
                and self.grow is None
                and target.capacity is not None
                and self.offset + self.size > target.capacity
            ):
                raise DeviceFull(
                    errno.ENOSPC,
                    f"{self.size} bytes at offset {self.offset} do not fit in "
                    f"{target.capacity} bytes",
                    self.path,
                )
            pipe = _WritePipeline(
                self.core, consumers, buffer_size=buffer_size, depth=depth, skip_zeros=skip_zeros
            )
            drained = False
            try:
                pipe.start()
                written = self._loop(pipe, _Filler(self.core, source, buffer_size))
                pipe.drain()
                drained = True
            except _Aborted:
                assert pipe.error is not None
                raise pipe.error from None
            finally:
                pipe.stop(abort=not drained)
            assert self.target is not None
            self.target.fsync()
            if self.size is not None and written != self.size:
                raise SizeMismatch(f"expected {self.size} bytes, the source gave {written}")
            return written
        finally:
            self.close()

    def _loop(self, pipe: _WritePipeline, filler: _Filler) -> int:
        pos = self.offset
        written = 0
        while not filler.eof:
            slot = pipe.get_free()
            try:
                n = filler.fill(slot)
            except BaseException:
                pipe.put_back(slot)
                raise
            if self.size is not None and written + n > self.size:
                pipe.put_back(slot)
                raise SizeMismatch(f"the source gave more than the expected {self.size} bytes")
            if n == 0:
                pipe.put_back(slot)
                break
            assert self.target is not None
            padded = _round_up(n, self.target.block_size)
            if padded > n:
                self.core.fill_zero(slot.buf, n, padded)
            try:
                target = self.ensure_room(pipe, pos, padded, written)
            except BaseException:
                pipe.put_back(slot)
                raise
            pipe.dispatch(slot, n, padded, pos, target)
            pos += n
            written += n
        return written


# --------------------------------------------------------------------------- reads


class _ReadWorker:
    """A reader thread with its own aligned buffer: one ``pread`` per request, in order.

    The main thread puts ``(pos, want)`` on ``requests`` and gets the byte count (or the
    error) from ``done``; it has at most one request out per worker, so nothing queues up.
    """

    __slots__ = ("buf", "done", "requests", "stopping", "thread")

    def __init__(self, core: ModuleType, target: _Target, buffer_size: int, name: str) -> None:
        self.buf = core.AlignedBuffer(buffer_size)
        self.requests: queue.SimpleQueue[tuple[int, int] | None] = queue.SimpleQueue()
        self.done: queue.SimpleQueue[int | BaseException] = queue.SimpleQueue()
        self.stopping = False
        self.thread = threading.Thread(
            target=self._loop, args=(core.pread_full, target), name=name, daemon=True
        )

    def _loop(self, pread_full: Callable[..., int], target: _Target) -> None:
        buf, done = self.buf, self.done
        fd, path = target.fd, target.path
        while (request := self.requests.get()) is not None:
            if self.stopping:  # the generator was closed: skip the read still queued
                continue
            pos, want = request
            try:
                done.put(pread_full(fd, buf, want, pos, path))
            except BaseException as exc:
                done.put(exc)

    def stop(self) -> None:
        self.stopping = True
        self.requests.put(None)


def _read_gen(
    core: ModuleType,
    path: str,
    offset: int,
    length: int,
    buffer_size: int,
    depth: int,
    allow_buffered: bool,
) -> Iterator[bytes]:
    target = _Target.open(path, write=False, allow_buffered=allow_buffered)
    workers: list[_ReadWorker] = []
    try:
        end = offset + length
        if target.capacity is not None and end > target.capacity:
            raise EOFError(f"{path}: range ends at {end}, past the end ({target.capacity} bytes)")
        if length == 0:
            return
        bs = target.block_size
        next_pos = offset - offset % bs
        aligned_end = _round_up(end, bs)
        # Requests out, oldest first: the worker and the device offset it reads.
        ring: deque[tuple[_ReadWorker, int]] = deque()

        def submit(worker: _ReadWorker) -> None:
            nonlocal next_pos
            want = min(buffer_size, aligned_end - next_pos)
            worker.requests.put((next_pos, want))
            ring.append((worker, next_pos))
            next_pos += want

        while len(workers) < depth and next_pos < aligned_end:
            worker = _ReadWorker(core, target, buffer_size, f"chunkio-read-{len(workers)}")
            workers.append(worker)
            worker.thread.start()
            submit(worker)
        copy_out = core.copy_out
        while ring:
            worker, pos = ring.popleft()
            got = worker.done.get()
            if isinstance(got, BaseException):
                try:
                    raise got
                finally:
                    del got  # no cycle through the traceback
            lo = max(offset, pos) - pos
            hi = min(end, pos + buffer_size) - pos
            if got < hi:
                raise EOFError(f"{path}: short read at offset {pos + got}")
            data = copy_out(worker.buf, lo, hi)
            if next_pos < aligned_end:
                submit(worker)
            yield data
    finally:
        # Stop every worker and wait for a read still running before the buffers and the
        # fd go away.
        for worker in workers:
            worker.stop()
        for worker in workers:
            if worker.thread.ident is not None:
                worker.thread.join()
        _release_buffers([worker.buf for worker in workers])
        workers.clear()
        target.close()


# --------------------------------------------------------------------------- public API


class Copier:
    """The streaming copier bound to one core (``"compiled"`` or ``"python"``)."""

    def __init__(self, core: ModuleType) -> None:
        self.core = core
        self.core_name: str = core.CORE_NAME

    def __repr__(self) -> str:
        return f"Copier({self.core_name!r})"

    def write_stream(
        self,
        source: Source,
        path: str,
        *,
        offset: int = 0,
        size: int | None = None,
        hashers: Iterable[_Updatable] = (),
        verifier: _Updatable | None = None,
        skip_zeros: bool = False,
        buffer_size: int = 4 * MiB,
        depth: int = 2,
        grow: Grow | None = None,
        allow_buffered: bool = False,
    ) -> int:
        """Copy ``source`` to ``path`` at ``offset`` with O_DIRECT; fsync before returning.

        :param source: an object with ``read(n)`` (short reads fine, ``b""`` ends it) or an
            iterable of bytes-like chunks. Never asked for more than ``buffer_size`` at once.
        :param size: the exact byte count expected, or ``None`` if unknown.
        :param hashers: objects with ``update()``, each fed the image bytes on its own thread.
        :param verifier: like a hasher (e.g. glance's signature verifier).
        :param skip_zeros: do not write all-zero 64 KiB blocks (they are still hashed); only
            for a target that reads back zeros where never written.
        :param buffer_size: bytes per aligned buffer, a multiple of 4096.
        :param depth: writes in flight; memory is about ``(depth + 2) * buffer_size``.
        :param grow: ``grow(written) -> path`` when the stream is about to pass the end of the
            device; called with no I/O in flight and the device fsynced and closed; the copier
            reopens the returned path (or the same one for ``None``) and continues.
        :param allow_buffered: use buffered I/O if the path refuses O_DIRECT.
        :returns: the image bytes written.
        :raises SizeMismatch: the source gave more (nothing more is written) or fewer bytes
            than ``size``.
        :raises DeviceFull: the image does not fit and there is no ``grow``.
        :raises DirectIOUnsupported: the path refuses O_DIRECT and not ``allow_buffered``.
        """
        _check_buffer_args(buffer_size, depth)
        if offset < 0 or (size is not None and size < 0):
            raise ValueError("offset and size must not be negative")
        consumers = [*hashers, *([verifier] if verifier is not None else [])]
        writer = _Writer(
            self.core, path, offset=offset, size=size, grow=grow, allow_buffered=allow_buffered
        )
        return writer.run(
            source, consumers, buffer_size=buffer_size, depth=depth, skip_zeros=skip_zeros
        )

    def read_range(
        self,
        path: str,
        offset: int,
        length: int,
        *,
        buffer_size: int = 4 * MiB,
        depth: int = 2,
        allow_buffered: bool = False,
    ) -> Iterator[bytes]:
        """Yield ``bytes`` covering exactly ``[offset, offset + length)`` of ``path``.

        Any alignment; up to ``depth`` reads ahead. The device is opened on the first
        ``next()``; closing the generator early stops the reads and releases everything.

        :raises EOFError: the range runs past the end of the device or file.
        :raises DirectIOUnsupported: the path refuses O_DIRECT and not ``allow_buffered``.
        """
        _check_buffer_args(buffer_size, depth)
        if offset < 0 or length < 0:
            raise ValueError("offset and length must not be negative")
        return _read_gen(self.core, path, offset, length, buffer_size, depth, allow_buffered)


_copiers: dict[str, Copier] = {}


def get_copier(core: str | None = None) -> Copier:
    """The copier on ``core`` (``"compiled"``, ``"python"``, or ``None`` for ``CORE``).

    :raises ImportError: ``"compiled"`` was asked for but is not built.
    """
    name = CORE if core is None else core
    copier = _copiers.get(name)
    if copier is not None:
        return copier
    if name == "compiled":
        if _compiled is None:
            raise ImportError(f"the compiled copier core is not available: {_compiled_error}")
        module: ModuleType = _compiled
    elif name == "python":
        module = _chunkio_py
    else:
        raise ValueError(f"unknown copier core {name!r} (compiled or python)")
    copier = _copiers[name] = Copier(module)
    return copier


write_stream = get_copier().write_stream
read_range = get_copier().read_range
