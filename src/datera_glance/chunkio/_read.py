"""``read_range``: ``depth`` reads in flight on reader threads, the bytes yielded in order.

``ReadPipeline`` mirrors the write side's ``WritePipeline``: the threads and their buffers of
one call, as a context manager that stops and joins them whatever happened. ``Reader`` mirrors
``Writer``: one call, the device, the range and the loop around the pipeline.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable, Iterator
from types import ModuleType, TracebackType

from datera_glance.chunkio._device import Target, release_buffers, round_up


class ReadWorker:
    """A reader thread with its own aligned buffer: one ``pread`` per request, in order.

    The main thread puts ``(pos, want)`` on ``requests`` and gets the byte count (or the
    error) from ``done``; it has at most one request out per worker, so nothing queues up.
    """

    __slots__ = ("buf", "done", "requests", "stopping", "thread")

    def __init__(self, core: ModuleType, target: Target, buffer_size: int, name: str) -> None:
        self.buf = core.AlignedBuffer(buffer_size)
        self.requests: queue.SimpleQueue[tuple[int, int] | None] = queue.SimpleQueue()
        self.done: queue.SimpleQueue[int | BaseException] = queue.SimpleQueue()
        self.stopping = False
        self.thread = threading.Thread(
            target=self._loop, args=(core.pread_full, target), name=name, daemon=True
        )

    def _loop(self, pread_full: Callable[..., int], target: Target) -> None:
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


class ReadPipeline:
    """The reader threads of one ``read_range``, as a context manager.

    Up to ``depth`` workers, started as the first requests go out; requests complete in the
    order they were made. Leaving the block stops every worker and waits for a read still
    running before the buffers and the device go away.
    """

    def __init__(self, core: ModuleType, target: Target, buffer_size: int, depth: int) -> None:
        self.core = core
        self.target = target
        self.buffer_size = buffer_size
        self.depth = depth
        self.workers: list[ReadWorker] = []
        # Requests out, oldest first: the worker and the device offset it reads.
        self.ring: deque[tuple[ReadWorker, int]] = deque()

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
        release_buffers([worker.buf for worker in self.workers])
        self.workers.clear()
        self.ring.clear()

    def start_worker(self) -> ReadWorker | None:
        """A new worker, or None when ``depth`` are running."""
        if len(self.workers) >= self.depth:
            return None
        name = f"chunkio-read-{len(self.workers)}"
        worker = ReadWorker(self.core, self.target, self.buffer_size, name)
        self.workers.append(worker)
        worker.thread.start()
        return worker

    def submit(self, worker: ReadWorker, pos: int, want: int) -> None:
        worker.requests.put((pos, want))
        self.ring.append((worker, pos))

    def __bool__(self) -> bool:
        return bool(self.ring)

    def next_done(self) -> tuple[ReadWorker, int, int]:
        """Wait for the oldest request: its worker, device offset and byte count."""
        worker, pos = self.ring.popleft()
        got = worker.done.get()
        if isinstance(got, BaseException):
            try:
                raise got
            finally:
                del got  # no cycle through the traceback
        return worker, pos, got


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
            with ReadPipeline(self.core, target, buffer_size, depth) as pipe:
                yield from self._loop(pipe, target.block_size)
        finally:
            target.close()

    def _loop(self, pipe: ReadPipeline, block_size: int) -> Iterator[bytes]:
        offset, end, size = self.offset, self.offset + self.length, pipe.buffer_size
        next_pos = offset - offset % block_size
        aligned_end = round_up(end, block_size)
        while next_pos < aligned_end and (worker := pipe.start_worker()) is not None:
            want = min(size, aligned_end - next_pos)
            pipe.submit(worker, next_pos, want)
            next_pos += want
        copy_out = self.core.copy_out
        while pipe:
            worker, pos, got = pipe.next_done()
            lo = max(offset, pos) - pos
            hi = min(end, pos + size) - pos
            if got < hi:
                raise EOFError(f"{self.path}: short read at offset {pos + got}")
            data = copy_out(worker.buf, lo, hi)
            if next_pos < aligned_end:  # the worker's buffer is free again
                want = min(size, aligned_end - next_pos)
                pipe.submit(worker, next_pos, want)
                next_pos += want
            yield data
