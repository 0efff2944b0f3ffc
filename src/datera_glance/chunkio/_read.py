"""``read_range``: ``depth`` reads in flight on reader threads, the chunks yielded in order.

Each reader thread reads into an aligned buffer of its own, which is on huge pages where the
kernel has them, and copies the chunk out into a ``bytes`` object of its own: a device read
into huge-page memory ran twice as fast here as one into a ``bytes`` object's small pages,
and the copy costs a tenth of that. A range that fits one chunk is read on the calling
thread (no threads to start for a small ranged read), through a ``SpareBuffer`` kept
between calls, so that it costs no page faults either.

``ReadPipeline`` mirrors the write side's ``WritePipeline``: the threads of one call, as a
context manager that stops and joins them whatever happened. ``Reader`` mirrors ``Writer``:
one call, the device, the range and the loop around the pipeline.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Generator, Iterator
from types import ModuleType, TracebackType
from typing import Any

from datera_glance.chunkio._device import Target, release_buffers

# A chunk's device offset, its length, and the core's ``unfilled`` bytes for it (see there).
_Request = tuple[int, int, Any]

#: A spare buffer larger than this is freed after its read, not kept for the next one.
SPARE_MAX = 16 * 1024 * 1024


class SpareBuffer:
    """The aligned buffer of a copier's single-read ranges, kept from one call to the next:
    a fresh one would cost page faults and zeroing on every call. Sized in whole huge pages
    (at most one is lost to rounding). ``take`` makes it the caller's until ``give``;
    concurrent callers each get their own.
    """

    def __init__(self, core: ModuleType) -> None:
        self.core = core
        self.kept: list[Any] = []

    def take(self, size: int) -> Any:
        """An aligned buffer of at least ``size`` bytes."""
        try:
            buf = self.kept.pop()  # atomic: two threads never get the same one
        except IndexError:
            buf = None
        if buf is not None and len(buf) >= size:
            return buf
        if buf is not None:
            release_buffers([buf])
        huge = self.core.HUGE_PAGE_SIZE
        return self.core.AlignedBuffer(-(-size // huge) * huge)

    def give(self, buf: Any) -> None:
        """Keep ``buf`` for the next call, or free it (too big, or one is kept already)."""
        if len(buf) <= SPARE_MAX and not self.kept:
            self.kept.append(buf)
        else:
            release_buffers([buf])


class ReadWorker:
    """A reader thread: fills one chunk per request, in order.

    The main thread puts ``(pos, length, chunk)`` on ``requests`` and gets the filled chunk
    (or the error) from ``done``; it has at most one request out per worker, so nothing
    queues.
    ``bounce`` is the aligned buffer the worker reads into.
    """

    __slots__ = ("bounce", "done", "requests", "stopping", "thread")

    def __init__(self, core: ModuleType, target: Target, bounce: Any, name: str) -> None:
        self.bounce = bounce
        self.requests: queue.SimpleQueue[_Request | None] = queue.SimpleQueue()
        self.done: queue.SimpleQueue[bytes | BaseException] = queue.SimpleQueue()
        self.stopping = False
        self.thread = threading.Thread(
            target=self._loop, args=(core, target), name=name, daemon=True
        )

    def _loop(self, core: ModuleType, target: Target) -> None:
        read_chunk, done, bounce = core.read_chunk, self.done, self.bounce
        fd, path, block_size = target.fd, target.path, target.read_alignment
        while (request := self.requests.get()) is not None:
            if self.stopping:  # the generator was closed: skip the read still queued
                continue
            pos, length, chunk = request
            try:
                done.put(read_chunk(fd, bounce, pos, length, block_size, path, chunk))
            except BaseException as exc:
                done.put(exc)
            del chunk, request  # the consumer holds the only reference to what it got

    def stop(self) -> None:
        self.stopping = True
        self.requests.put(None)


class ReadPipeline:
    """The reader threads of one ``read_range``, as a context manager.

    Up to ``depth`` workers, started as the first requests go out; requests complete in the
    order they were made. Leaving the block stops every worker and waits for a read still
    running before the device goes away.
    """

    def __init__(self, core: ModuleType, target: Target, buffer_size: int, depth: int) -> None:
        self.core = core
        self.target = target
        # Each worker's buffer holds the whole aligned span of a chunk.
        self.bounce_size = buffer_size + target.read_alignment
        self.depth = depth
        self.workers: list[ReadWorker] = []
        self.ring: deque[ReadWorker] = deque()  # requests out, oldest first

    def __enter__(self) -> ReadPipeline:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for worker in self.workers:
            worker.stop()
        for worker in self.workers:
            if worker.thread.ident is not None:
                worker.thread.join()
        release_buffers([worker.bounce for worker in self.workers])
        self.workers.clear()
        self.ring.clear()

    def start_worker(self) -> ReadWorker | None:
        """A new worker, or None when ``depth`` are running."""
        if len(self.workers) >= self.depth:
            return None
        bounce = self.core.AlignedBuffer(self.bounce_size)
        worker = ReadWorker(self.core, self.target, bounce, f"chunkio-read-{len(self.workers)}")
        self.workers.append(worker)
        worker.thread.start()
        return worker

    def submit(self, worker: ReadWorker, pos: int, length: int) -> None:
        worker.requests.put((pos, length, self.core.unfilled(length)))
        self.ring.append(worker)

    def __bool__(self) -> bool:
        return bool(self.ring)

    def next_done(self) -> tuple[ReadWorker, bytes]:
        """Wait for the oldest request: its worker (free again) and the chunk."""
        worker = self.ring.popleft()
        got = worker.done.get()
        if isinstance(got, BaseException):
            try:
                raise got
            finally:
                del got  # no cycle through the traceback
        return worker, got


class Reader:
    """One ``read_range`` call: the device, the range, and the loop around a pipeline."""

    def __init__(
        self,
        core: ModuleType,
        path: str,
        offset: int,
        length: int,
        *,
        spare: SpareBuffer,
        allow_buffered: bool,
    ) -> None:
        self.core = core
        self.spare = spare
        self.path = path
        self.offset = offset
        self.length = length
        self.allow_buffered = allow_buffered

    def run(self, *, buffer_size: int, depth: int) -> Generator[bytes, None, None]:
        target = Target.open(self.path, write=False, allow_buffered=self.allow_buffered)
        try:
            end = self.offset + self.length
            if target.capacity is not None and end > target.capacity:
                raise EOFError(
                    f"{self.path}: range ends at {end}, past the end ({target.capacity} bytes)"
                )
            if self.length == 0:
                return
            if self.length <= buffer_size:
                yield from self._read_whole(target)
                return
            chunks = _Chunks(self.offset, end, buffer_size)
            with ReadPipeline(self.core, target, buffer_size, depth) as pipe:
                yield from self._loop(pipe, chunks)
        finally:
            target.close()

    def _read_whole(self, target: Target) -> Iterator[bytes]:
        """A range that fits one buffer, in one read on the calling thread."""
        alignment = target.read_alignment
        buf = self.spare.take(self.offset % alignment + self.length + alignment)
        try:
            chunk = self.core.read_chunk(
                target.fd, buf, self.offset, self.length, alignment, target.path
            )
        finally:
            self.spare.give(buf)
        yield chunk

    def _loop(self, pipe: ReadPipeline, chunks: _Chunks) -> Iterator[bytes]:
        while chunks and (worker := pipe.start_worker()) is not None:
            pipe.submit(worker, *chunks.next())
        while pipe:
            worker, data = pipe.next_done()
            if chunks:  # keep the worker busy while the consumer has the data
                pipe.submit(worker, *chunks.next())
            yield data
            del data  # the consumer's reference is the only one


class _Chunks:
    """The consecutive chunks of ``[offset, end)``, each ``size`` bytes but the last."""

    def __init__(self, offset: int, end: int, size: int) -> None:
        self.pos = offset
        self.end = end
        self.size = size

    def __bool__(self) -> bool:
        return self.pos < self.end

    def next(self) -> tuple[int, int]:
        """The next chunk's device offset and length."""
        pos = self.pos
        self.pos = min(pos + self.size, self.end)
        return pos, self.pos - pos
