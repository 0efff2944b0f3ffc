"""Progress of commands that move image data: a tqdm bar on stderr, only on a terminal, and a
final ``bytes / seconds / MB/s`` line (MB = 10**6 bytes, as ``dd`` and the benchmarks say)."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO, TextIO

from tqdm import tqdm


def rate_line(nbytes: int, seconds: float) -> str:
    rate = nbytes / seconds / 1e6 if seconds > 0 else 0.0
    return f"{nbytes} bytes in {seconds:.2f} s, {rate:.1f} MB/s"


def _shape(stream: TextIO) -> tuple[int, int]:
    """The terminal's columns and lines; 80 x 24 where it reports none (a fresh pty is 0 x 0,
    and tqdm then hides its bar as if it were below the screen)."""
    try:
        size = os.get_terminal_size(stream.fileno())
    except (OSError, ValueError):
        return 80, 24
    return size.columns or 80, size.lines or 24


class Progress:
    """Counts bytes; draws a bar when ``stream`` is a terminal."""

    def __init__(
        self,
        label: str,
        total: int | None,
        *,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream or sys.stderr
        self.clock = clock
        self.started = clock()
        self.done = 0
        self.seconds = 0.0
        self._bar: Any = None
        if self.stream.isatty():
            columns, lines = _shape(self.stream)
            self._bar = tqdm(
                total=total or None,
                desc=label,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                file=self.stream,
                ncols=columns,
                nrows=lines,
                leave=False,
            )

    def update(self, n: int) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.update(n)

    def finish(self, *, quiet: bool = False) -> None:
        """Close the bar and print the final line (unless ``quiet``: it goes into JSON)."""
        self.seconds = self.clock() - self.started
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if not quiet:
            print(rate_line(self.done, self.seconds), file=self.stream)

    @property
    def mbps(self) -> float:
        return self.done / self.seconds / 1e6 if self.seconds > 0 else 0.0

    def summary(self) -> dict[str, Any]:
        return {"bytes": self.done, "seconds": round(self.seconds, 3), "MBps": round(self.mbps, 1)}


class CountingReader:
    """A file for ``Store.add`` that reports each read to ``progress``."""

    def __init__(self, source: BinaryIO, progress: Progress) -> None:
        self._source = source
        self._progress = progress

    def read(self, n: int = -1) -> bytes:
        data = self._source.read(n)
        self._progress.update(len(data))
        return data


def counted(chunks: Iterator[bytes], progress: Progress) -> Iterator[bytes]:
    for chunk in chunks:
        progress.update(len(chunk))
        yield chunk
