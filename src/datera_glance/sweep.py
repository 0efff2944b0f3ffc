"""The copier's buffer size x depth sweep on one scratch file or device, and the recommendation.

The installed package's counterpart of the benchmark suite's copier cases: each setting runs a
plain write, an O_DIRECT read back and a write hashing md5 + sha512 (what an upload does), on
the copier the Store uses. The recommendation (``recommend``, the one home
of the rule: ``benchmarks/report.py`` applies it to the suite's medians) is the best geometric
mean of the three rates; among the settings within 5 % of it (the noise), the smallest buffer;
only settings whose memory per transfer, ``(depth + 2) x buffer``, stays within
``memory_limit``, ``4 x buffer + 32 MiB``.
"""

from __future__ import annotations

import hashlib
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from oslo_utils import units

from datera_glance import chunkio

NOISE = 0.95
HASHES = ("md5", "sha512")


@dataclass(frozen=True)
class Plan:
    size: int
    buffer_sizes: tuple[int, ...]
    depths: tuple[int, ...]


QUICK = Plan(256 * units.Mi, (units.Mi, 4 * units.Mi, 16 * units.Mi), (2, 4))
FULL = Plan(
    units.Gi,
    (256 * units.Ki, units.Mi, 4 * units.Mi, 16 * units.Mi),
    (1, 2, 4, 8),
)


def memory_limit(buffer_size: int) -> int:
    """The memory a transfer may use at ``buffer_size``: the RSS target of the benchmarks too."""
    return 4 * buffer_size + 32 * units.Mi


@dataclass(frozen=True)
class Point:
    buffer_size: int
    depth: int
    write_MBps: float
    read_MBps: float
    hashed_write_MBps: float

    @property
    def score(self) -> float:
        rates = (self.write_MBps, self.read_MBps, self.hashed_write_MBps)
        return math.exp(sum(math.log(max(r, 1e-9)) for r in rates) / len(rates))

    @property
    def fits(self) -> bool:
        return (self.depth + 2) * self.buffer_size <= memory_limit(self.buffer_size)


class _Source:
    """``read(n)`` over ``total`` bytes of random data repeating at an odd period, so a buffer
    written twice or at the wrong offset does not read back the same. Reads return views of
    one block (no copy): the source must not slow the copier down."""

    PERIOD = 16 * units.Mi + 4097

    def __init__(self, block: bytes, total: int) -> None:
        self._block = memoryview(block)
        self._left = total
        self._pos = 0

    @classmethod
    def block(cls, max_read: int) -> bytes:
        return os.urandom(cls.PERIOD + max_read)

    def read(self, n: int = -1) -> memoryview:
        longest = len(self._block) - self.PERIOD  # any slice this long is contiguous
        n = min(self._left if n < 0 else n, self._left, longest)
        view = self._block[self._pos : self._pos + n]
        self._pos = (self._pos + n) % self.PERIOD
        self._left -= n
        return view


def _rate(nbytes: int, seconds: float) -> float:
    return nbytes / seconds / 1e6 if seconds > 0 else 0.0


class Sweep:
    """Runs a ``Plan`` on ``path`` (a preallocated scratch file or a device)."""

    def __init__(
        self,
        path: str,
        plan: Plan,
        *,
        copier: chunkio.Copier | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.path = path
        self.plan = plan
        self.copier = copier or chunkio.get_copier()
        self.clock = clock
        self._block = _Source.block(max(plan.buffer_sizes))

    def _write(self, buffer_size: int, depth: int, hashed: bool) -> float:
        hashers = [hashlib.new(name) for name in HASHES] if hashed else []
        t0 = self.clock()
        written = self.copier.write_stream(
            _Source(self._block, self.plan.size),
            self.path,
            size=self.plan.size,
            hashers=hashers,
            buffer_size=buffer_size,
            depth=depth,
        )
        seconds = self.clock() - t0
        if written != self.plan.size:
            raise RuntimeError(f"the copier wrote {written} bytes, not {self.plan.size}")
        return _rate(written, seconds)

    def _read(self, buffer_size: int, depth: int) -> float:
        nbytes = 0
        t0 = self.clock()
        for chunk in self.copier.read_range(
            self.path, 0, self.plan.size, buffer_size=buffer_size, depth=depth
        ):
            nbytes += len(chunk)
        return _rate(nbytes, self.clock() - t0)

    def measure(self, buffer_size: int, depth: int) -> Point:
        return Point(
            buffer_size=buffer_size,
            depth=depth,
            write_MBps=self._write(buffer_size, depth, hashed=False),
            read_MBps=self._read(buffer_size, depth),
            hashed_write_MBps=self._write(buffer_size, depth, hashed=True),
        )

    def run(self, on_point: Callable[[Point], None] = lambda point: None) -> list[Point]:
        points = []
        for buffer_size in self.plan.buffer_sizes:
            for depth in self.plan.depths:
                point = self.measure(buffer_size, depth)
                on_point(point)
                points.append(point)
        return points


def recommend(points: Sequence[Point]) -> Point | None:
    """The recommended setting (see the module docstring), or None if none fits."""
    fitting = [p for p in points if p.fits]
    if not fitting:
        return None
    top = max(p.score for p in fitting)
    near = [p for p in fitting if p.score >= NOISE * top]
    return min(near, key=lambda p: (p.buffer_size, p.depth))


def as_json(point: Point) -> dict[str, Any]:
    return {
        "buffer_size": point.buffer_size,
        "depth": point.depth,
        "write_MBps": round(point.write_MBps, 1),
        "read_MBps": round(point.read_MBps, 1),
        "hashed_write_MBps": round(point.hashed_write_MBps, 1),
        "score_MBps": round(point.score, 1),
    }
