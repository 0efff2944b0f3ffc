"""``write_stream``: a source into aligned buffers, hashed on their own threads, written at depth.

The calling thread fills page-aligned buffers from the source (``Filler``); every filled buffer
goes to one thread per hasher (and the verifier) and to a pool of ``depth`` writer threads, and
returns to the free ring when all of them are done with it (``WritePipeline``). The hashes thus
run on both cores at once and up to ``depth`` writes are queued on the device, while memory
stays at ``depth + 2`` buffers. ``Writer`` is one call: the device, its growth and the loop.
"""

from __future__ import annotations

import errno
import io
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from types import ModuleType, TracebackType
from typing import TYPE_CHECKING, Any, Protocol

from oslo_utils import units

from datera_glance.chunkio._device import Target, release_buffers, round_up
from datera_glance.chunkio.errors import DeviceFull, SizeMismatch

if TYPE_CHECKING:
    from typing import TypeAlias

    from typing_extensions import Buffer

# skip_zeros looks at blocks this big: small enough to find the holes of a raw image, big
# enough that the writes around them stay efficient. A multiple of every block size.
ZERO_GRAIN = 64 * units.Ki


class Updatable(Protocol):
    def update(self, data: Buffer, /) -> Any: ...


class Readable(Protocol):
    def read(self, n: int, /) -> Buffer: ...


if TYPE_CHECKING:
    Source: TypeAlias = Readable | Iterable[Buffer]
    Grow: TypeAlias = Callable[[int], str | None]


class Slot:
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
        self.target: Target | None = None


_STOP = None


class _Aborted(Exception):
    """Internal: a worker failed; leaving the pipeline re-raises the worker's error."""


class WritePipeline:
    """The worker threads and the buffer ring of one ``write_stream``, as a context manager.

    Leaving the block normally waits until every write and hash is done; leaving it with an
    exception drops what is still queued. Either way every thread is joined and the buffers
    are released; a worker's failure is raised in place of the main thread's ``_Aborted``.

    Hand-offs are ``SimpleQueue`` puts and gets only (C code, one wake-up per buffer and
    consumer): filled slots go out on per-consumer queues, and the last consumer of a slot
    puts it on ``free_q``. A worker's error also goes on ``free_q`` (as ``_STOP``), so the
    main thread never waits on anything else.
    """

    def __init__(
        self,
        core: ModuleType,
        consumers: list[Updatable],
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
        self.free_q: queue.SimpleQueue[Slot | None] = queue.SimpleQueue()
        self.hand: list[Slot] = []  # free slots the main thread holds
        self.error: BaseException | None = None
        self.buffers: list[Any] = []
        self.slots: list[Slot] = []
        self.threads: list[threading.Thread] = []
        # One queue per hasher (in order), one shared by the writer pool (any order).
        self.write_q: queue.SimpleQueue[Slot | None] = queue.SimpleQueue()
        self.consumer_qs: list[queue.SimpleQueue[Slot | None]] = []

    # -- lifecycle

    def __enter__(self) -> WritePipeline:
        try:
            self._start()
        except BaseException:
            self._stop(abort=True)
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        error = exc
        if error is None:
            try:
                self.drain()
            except BaseException as failure:
                error = failure
        self._stop(abort=error is not None)
        if isinstance(error, _Aborted):
            assert self.error is not None
            raise self.error from None
        if error is not exc:
            raise error  # type: ignore[misc]  # drain() failed

    def _start(self) -> None:
        for _ in range(self.depth + 2):
            buf = self.core.AlignedBuffer(self.buffer_size)
            self.buffers.append(buf)
            self.slots.append(Slot(buf))
        self.hand.extend(self.slots)
        for i, consumer in enumerate(self.consumers):
            q: queue.SimpleQueue[Slot | None] = queue.SimpleQueue()
            self.consumer_qs.append(q)
            self._spawn(f"chunkio-hash-{i}", self._consume_loop, q, consumer)
        for i in range(self.depth):
            self._spawn(f"chunkio-write-{i}", self._write_loop)

    def _spawn(self, name: str, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        thread.start()
        self.threads.append(thread)

    def _stop(self, *, abort: bool) -> None:
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
        release_buffers(self.buffers)

    # -- workers

    def _fail(self, exc: BaseException) -> None:
        with self.lock:
            if self.error is None:
                self.error = exc
        self.free_q.put(_STOP)  # wakes the main thread if it waits for a buffer

    def _release(self, slot: Slot) -> None:
        with self.lock:
            slot.refs -= 1
            last = not slot.refs
        if last:
            self.free_q.put(slot)

    def _consume_loop(self, q: queue.SimpleQueue[Slot | None], consumer: Updatable) -> None:
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

    def _write_nonzero(self, slot: Slot, target: Target) -> None:
        """Write only the runs of ``ZERO_GRAIN`` blocks that are not all zero."""
        core = self.core
        view = slot.view
        padded = slot.padded
        start = -1  # first byte of the current non-zero run
        for lo in range(0, padded, ZERO_GRAIN):
            hi = min(lo + ZERO_GRAIN, padded)
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

    def _take(self) -> Slot:
        """Wait for the next slot a worker gives back."""
        slot = self.free_q.get()
        if slot is None or self.error is not None:
            raise _Aborted
        return slot

    def get_free(self) -> Slot:
        self._raise_if_failed()
        return self.hand.pop() if self.hand else self._take()

    def put_back(self, slot: Slot) -> None:
        self.hand.append(slot)

    def dispatch(self, slot: Slot, nbytes: int, padded: int, pos: int, target: Target) -> None:
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


class Filler:
    """Fills aligned buffers from a ``read(n)`` object or an iterable of bytes-like chunks."""

    def __init__(self, core: ModuleType, source: Source, buffer_size: int) -> None:
        self.core = core
        self.buffer_size = buffer_size
        self.reader: Callable[[int], Buffer] | None = None
        self.readinto: Callable[[memoryview], int | None] | None = None
        self.chunks: Iterator[Buffer] | None = None
        read = getattr(source, "read", None)
        if callable(read):
            self.reader = read
            if isinstance(source, io.IOBase) and hasattr(source, "readinto"):
                # Files and BytesIO fill the aligned buffer directly: one copy less.
                self.readinto = source.readinto
        else:
            self.chunks = iter(source)  # type: ignore[arg-type]
        self.leftover: memoryview | None = None
        self.eof = False

    def fill(self, slot: Slot) -> int:
        """Copy up to one buffer of source bytes into the slot; fewer only at the end."""
        filled = 0
        size = self.buffer_size
        while filled < size and not self.eof:
            if self.readinto is not None:
                filled += self._read_into(slot, filled)
                continue
            if self.leftover is None:
                # Never more than the room left: glance's reader refuses reads >= 128 MiB.
                self.leftover = self._next_chunk(size - filled)
                if self.leftover is None:
                    break
            filled += self._take_leftover(slot, filled)
        return filled

    def _read_into(self, slot: Slot, filled: int) -> int:
        assert self.readinto is not None
        with slot.view[filled : self.buffer_size] as free_part:
            try:
                got = self.readinto(free_part)
            except NotImplementedError:
                # io.RawIOBase leaves readinto to subclasses; read() is all a source promises.
                self.readinto = None
                return 0
        if got is None:
            raise BlockingIOError(errno.EAGAIN, "non-blocking source has no data")
        if not got:
            self.eof = True
        return got

    def _next_chunk(self, room: int) -> memoryview | None:
        """The source's next non-empty chunk as a byte view, or None at its end."""
        while True:
            if self.reader is not None:
                chunk = self.reader(room)
                if not chunk:
                    self.eof = True
                    return None
            else:
                try:
                    chunk = next(self.chunks)  # type: ignore[arg-type]
                except StopIteration:
                    self.eof = True
                    return None
            view = memoryview(chunk)
            if view.format != "B" or view.ndim != 1:
                view = view.cast("B")
            if view.nbytes:
                return view

    def _take_leftover(self, slot: Slot, filled: int) -> int:
        """Copy what fits of the current chunk; a reader that returned more than asked, or a
        chunk bigger than the room, keeps the rest for the next buffer."""
        view = self.leftover
        assert view is not None
        room = self.buffer_size - filled
        if view.nbytes <= room:
            self.leftover = None
            return int(self.core.copy_into(slot.buf, filled, view))
        self.leftover = view[room:]
        return int(self.core.copy_into(slot.buf, filled, view[:room]))


class Writer:
    """One ``write_stream`` call: the device, its growth, and the loop around a pipeline."""

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
        self.target: Target | None = None

    def _open(self) -> Target:
        self.target = Target.open(self.path, write=True, allow_buffered=self.allow_buffered)
        return self.target

    def _close(self) -> None:
        if self.target is not None:
            self.target.close()
            self.target = None

    def run(
        self,
        source: Source,
        consumers: list[Updatable],
        *,
        buffer_size: int,
        depth: int,
        skip_zeros: bool,
    ) -> int:
        target = self._open()
        try:
            self._check_start(target)
            with WritePipeline(
                self.core, consumers, buffer_size=buffer_size, depth=depth, skip_zeros=skip_zeros
            ) as pipe:
                written = self._loop(pipe, Filler(self.core, source, buffer_size))
            assert self.target is not None  # grow() may have replaced it
            self.target.fsync()
            if self.size is not None and written != self.size:
                raise SizeMismatch(f"expected {self.size} bytes, the source gave {written}")
            return written
        finally:
            self._close()

    def _check_start(self, target: Target) -> None:
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
                f"{self.size} bytes at offset {self.offset} do not fit in {target.capacity} bytes",
                self.path,
            )

    def _loop(self, pipe: WritePipeline, filler: Filler) -> int:
        pos = self.offset
        written = 0
        while not filler.eof:
            slot = pipe.get_free()
            try:
                n = filler.fill(slot)
                if self.size is not None and written + n > self.size:
                    raise SizeMismatch(f"the source gave more than the expected {self.size} bytes")
                if n == 0:
                    pipe.put_back(slot)
                    break
                assert self.target is not None
                padded = round_up(n, self.target.block_size)
                if padded > n:
                    self.core.fill_zero(slot.buf, n, padded)
                target = self._ensure_room(pipe, pos, padded, written)
            except BaseException:
                pipe.put_back(slot)
                raise
            pipe.dispatch(slot, n, padded, pos, target)
            pos += n
            written += n
        return written

    def _ensure_room(self, pipe: WritePipeline, pos: int, padded: int, written: int) -> Target:
        """Make sure ``[pos, pos + padded)`` fits, growing the device if allowed."""
        target = self.target
        assert target is not None
        while target.capacity is not None and pos + padded > round_up(
            target.capacity, target.block_size
        ):
            if self.grow is None:
                raise DeviceFull(
                    errno.ENOSPC,
                    f"image passes the end of the device ({target.capacity} bytes) at "
                    f"offset {pos + padded}",
                    target.path,
                )
            target = self._grow(pipe, written)
            if pos % target.block_size:
                raise ValueError(f"offset {pos} not aligned to the new block size")
        return target

    def _grow(self, pipe: WritePipeline, written: int) -> Target:
        """Hand the device over: nothing in flight, data durable, closed while the caller
        resizes and reattaches it; then reopen what ``grow`` returns."""
        assert self.grow is not None and self.target is not None
        old_capacity = self.target.capacity or 0
        pipe.drain(held=1)  # the buffer being placed
        self.target.fsync()
        self._close()
        new_path = self.grow(written)
        if new_path:
            self.path = new_path
        target = self._open()
        if target.capacity is not None and target.capacity <= old_capacity:
            raise DeviceFull(
                errno.ENOSPC,
                f"grow() did not enlarge the device ({target.capacity} bytes)",
                target.path,
            )
        return target
