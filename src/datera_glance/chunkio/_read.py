"""``read_range``: ``depth`` reads in flight on reader threads, the chunks yielded in order.

Each chunk is a ``bytes`` object of its own that the device reads into directly (the compiled
core; ``ChunkAllocator`` sizes chunks so that their memory suits O_DIRECT), so a chunk costs
no copy, no page faults on a fresh buffer and one hand-off each way. A range that fits one
chunk is read on the calling thread: no threads to start for a small ranged read; it comes as
a lead of less than a page and the rest (``split_range``), so that even a range at an odd byte
offset is read without copying its bulk.

``ReadPipeline`` mirrors the write side's ``WritePipeline``: the threads of one call, as a
context manager that stops and joins them whatever happened. ``Reader`` mirrors ``Writer``:
one call, the device, the range and the loop around the pipeline.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Iterator
from types import ModuleType, TracebackType
from typing import Any

from datera_glance.chunkio._device import Target, release_buffers

_Request = tuple[Any, int]  # an unfilled chunk and the device offset it starts at


class ReadWorker:
    """A reader thread: fills one chunk per request, in order.

    The main thread puts ``(chunk, pos)`` on ``requests`` and gets the filled ``bytes`` (or
    the error) from ``done``; it has at most one request out per worker, so nothing queues.
    ``bounce`` is an aligned buffer for cores that cannot read into ``bytes`` (else None).
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
            chunk, pos = request
            try:
                done.put(read_chunk(fd, chunk, pos, block_size, path, bounce))
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
        # A core that copies needs a buffer per worker for the whole aligned span.
        self.bounce_size = 0 if core.ZERO_COPY_READS else buffer_size + target.read_alignment
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
        release_buffers([worker.bounce for worker in self.workers if worker.bounce])
        self.workers.clear()
        self.ring.clear()

    def start_worker(self) -> ReadWorker | None:
        """A new worker, or None when ``depth`` are running."""
        if len(self.workers) >= self.depth:
            return None
        bounce = self.core.AlignedBuffer(self.bounce_size) if self.bounce_size else None
        worker = ReadWorker(self.core, self.target, bounce, f"chunkio-read-{len(self.workers)}")
        self.workers.append(worker)
        worker.thread.start()
        return worker

    def submit(self, worker: ReadWorker, chunk: Any, pos: int) -> None:
        worker.requests.put((chunk, pos))
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
        self, core: ModuleType, path: str, offset: int, length: int, *, allow_buffered: bool
    ) -> None:
        self.core = core
        self.path = path
        self.offset = offset
        self.length = length
        self.allow_buffered = allow_buffered

    def run(self, *, buffer_size: int, depth: int) -> Iterator[bytes]:
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
            chunks = _Chunks(self.core, self.offset, end, buffer_size)
            with ReadPipeline(self.core, target, buffer_size, depth) as pipe:
                yield from self._loop(pipe, chunks)
        finally:
            target.close()

    def _read_whole(self, target: Target) -> Iterator[bytes]:
        """A range that fits one buffer, in one read on the calling thread: a lead of less
        than a page (copied) and the rest read straight into its ``bytes`` (no copy)."""
        alignment = target.read_alignment
        grain = self.core.PAGE_SIZE if alignment > 1 else 1  # buffered: nothing to align
        lead, rest = self.core.split_range(self.offset, self.length, grain)
        lead, rest = self.core.read_split(
            target.fd, lead, rest, self.offset, alignment, target.path
        )
        if lead is not None:
            yield lead
        del lead
        yield rest

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
    """The consecutive chunks of ``[offset, end)``, each at most ``size`` bytes.

    The first and the last are exact (the first a whole ``size`` when the range allows);
    the ones between end where the next chunk's memory can take a direct read.
    """

    def __init__(self, core: ModuleType, offset: int, end: int, size: int) -> None:
        self.allocator = core.ChunkAllocator(core.PAGE_SIZE)
        self.start = self.pos = offset
        self.end = end
        self.size = size

    def __bool__(self) -> bool:
        return self.pos < self.end

    def next(self) -> _Request:
        pos, left = self.pos, self.end - self.pos
        exact = pos == self.start or left <= self.size
        chunk = self.allocator.take(pos, min(left, self.size), exact)
        self.pos += len(chunk)
        return chunk, pos
