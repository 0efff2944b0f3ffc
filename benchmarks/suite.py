"""The benchmark cases, the bench they run on, and the interleaved rounds.

A *case* is one timed, verified operation (``Case.run(bench) -> Measurement``).  The pytest files
run each case under pytest-benchmark; ``run.py`` runs all of them in interleaved rounds
(A, B, C, A, B, C, ...) because this machine's disk drifts by 14-34 % within minutes, so only
figures taken side by side can be compared.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import harness as h
from benchmarks.harness import Measurement, MiB
from datera_glance import host

COPIER_IMPLS = ("compiled", "python")
IMPLS = ("compiled", "python", "buffered")
HASHES = ("md5", "sha512")  # what glance computes on upload (checksum + os_hash_value)
SPARSE_ZERO_FRACTION = 0.9
SPARSE_SEGMENT = 1 * MiB  # zero/data runs finer than the default buffer
GET_BUFFER = 4 * MiB  # the Store's read settings: datera_io_buffer_size, datera_io_depth
GET_DEPTH = 4
RANGED_SIZE = 1 * MiB  # ranged reads: this many bytes at a random byte offset, one at a time
RANGED_READS = 256


def cpu_seconds() -> float:
    """User + system CPU of this process (every thread) and of its waited-for children."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def get_copier(core: str) -> Any:
    """The copier for ``core`` (imported late: dd/fio/baseline cases work without it)."""
    from datera_glance.chunkio import get_copier as _get

    copier = _get(core)
    if copier.core_name != core:
        raise RuntimeError(f"asked for the {core} core, got {copier.core_name}")
    return copier


class Bench:
    """A loop device, two source patterns (on disk too, for dd) and what the device holds.

    Writes alternate between the two patterns, so a copier that silently writes nothing cannot
    pass verification with the previous case's data.
    """

    def __init__(self, workdir: Path, total: int, max_read: int, sector_size: int = 512):
        self.workdir = workdir
        self.total = total
        self.sector_size = sector_size
        self.patterns = [h.Pattern(seed, total, max_read) for seed in (1, 2)]
        self.src_files = [workdir / f"src{i}.bin" for i in range(2)]
        self.current: int | None = None  # index of the pattern the device holds, if known
        self.dev = ""
        self._stack = contextlib.ExitStack()
        self.copiers: dict[str, Any] = {}
        self._deferred: list[Callable[[], None]] = []

    def __enter__(self) -> Bench:
        for pattern, path in zip(self.patterns, self.src_files, strict=True):
            pattern.write_file(path)
        # 1 MiB of slack past the data: no reference tool ever hits the device's end.
        size = self.total + MiB
        self.dev = self._stack.enter_context(
            h.loop_device(self.workdir / "device.img", size, self.sector_size)
        )
        # First writes into a sparse backing file are slower: allocate it before measuring.
        self.restore(0)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def copier(self, core: str) -> Any:
        if core not in self.copiers:
            self.copiers[core] = get_copier(core)
        return self.copiers[core]

    def defer(self, check: Callable[[], None]) -> None:
        """Queue an untimed check (the read-back of a write) for ``settle``."""
        self._deferred.append(check)

    def settle(self) -> None:
        """Run the queued checks: after each case, or as pytest-benchmark's untimed setup."""
        checks, self._deferred = self._deferred, []
        for check in checks:
            check()

    def discard(self) -> None:
        """Forget queued checks (their operation failed)."""
        self._deferred.clear()

    def next_pattern(self) -> int:
        return 1 if self.current == 0 else 0

    def restore(self, index: int | None = None) -> int:
        """Put a known pattern on the device (untimed), for reads after fio wrote its own data."""
        if index is None:
            index = self.next_pattern()
        self.current = None
        h.dd_write(self.src_files[index], self.dev, 4 * MiB, self.total)
        self.current = index
        return index

    def info(self) -> dict[str, Any]:
        return {"total": self.total, **h.loop_info(self.dev)}


@dataclass(frozen=True, kw_only=True)
class Case:
    """One benchmark: ``group`` is write | read | hash | sparse | store."""

    group: str
    impl: str
    fn: Callable[[Bench], Measurement] = field(compare=False, repr=False)
    buffer_size: int = 0
    hashing: bool = False
    depth: int = 0
    variant: str = ""

    @property
    def id(self) -> str:
        parts = [self.group, self.impl]
        if self.variant:
            parts.append(self.variant)
        if self.buffer_size:
            parts.append(h.size_label(self.buffer_size))
        if self.hashing:
            parts.append("md5+sha512")
        if self.depth:
            parts.append(f"d{self.depth}")
        return "/".join(parts)

    def run(self, bench: Bench) -> Measurement:
        """The timed operation, then its untimed verification; records the CPU time the
        operation used (all threads, and dd/fio as children) in ``extra["cpu_seconds"]``."""
        cpu0 = cpu_seconds()
        try:
            m = self.fn(bench)
        except BaseException:
            bench.discard()
            raise
        m.extra.setdefault("cpu_seconds", cpu_seconds() - cpu0)
        bench.settle()
        return m

    def describe(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "impl": self.impl,
            "buffer_size": self.buffer_size,
            "hashing": self.hashing,
            "depth": self.depth,
            "variant": self.variant,
        }


# --------------------------------------------------------------------------------------------
# Case factories


def write_case(impl: str, buffer_size: int, hashing: bool = False, depth: int = 2) -> Case:
    """Copy the source stream onto the device, then check hashes and read it back."""

    def fn(bench: Bench) -> Measurement:
        bench.settle()
        index = bench.next_pattern()
        pattern = bench.patterns[index]
        bench.current = None
        if impl == "dd":
            m = h.dd_write(bench.src_files[index], bench.dev, buffer_size, bench.total)
        elif impl == "fio":
            # fio writes its own data; the device content is unknown afterwards.
            return h.fio(bench.dev, "write", buffer_size, bench.total)
        else:
            hashers = [hashlib.new(name) for name in HASHES] if hashing else []
            source = h.PatternSource(pattern)
            if impl == "buffered":
                m = h.buffered_write(source, bench.dev, buffer_size, hashers)
            else:
                copier = bench.copier(impl)
                t0 = time.perf_counter()
                written = copier.write_stream(
                    source,
                    bench.dev,
                    size=bench.total,
                    hashers=hashers,
                    buffer_size=buffer_size,
                    depth=depth,
                )
                m = Measurement(bench.total, time.perf_counter() - t0)
                if written != bench.total:
                    raise h.CopyMismatch(f"write_stream returned {written}, not {bench.total}")
            for name, hasher in zip(HASHES, hashers, strict=False):
                if hasher.hexdigest() != pattern.digest(name):
                    raise h.CopyMismatch(f"{name} computed by {impl} differs from hashlib's")

        def read_back() -> None:
            h.verify_device(bench.dev, pattern)
            bench.current = index

        bench.defer(read_back)
        return m

    d = depth if impl in COPIER_IMPLS else 0
    return Case(group="write", impl=impl, fn=fn, buffer_size=buffer_size, hashing=hashing, depth=d)


def read_case(impl: str, buffer_size: int, depth: int = 2) -> Case:
    """Read the device back; our implementations compare every byte while reading."""

    def fn(bench: Bench) -> Measurement:
        bench.settle()  # a pending read-back tells what the device holds
        if bench.current is None:
            bench.restore()
        assert bench.current is not None
        pattern = bench.patterns[bench.current]
        if impl == "dd":
            return h.dd_read(bench.dev, buffer_size, bench.total)
        if impl == "fio":
            return h.fio(bench.dev, "read", buffer_size, bench.total)
        if impl == "buffered":
            return h.buffered_read(bench.dev, bench.total, buffer_size, pattern)
        copier = bench.copier(impl)
        pos = 0
        t0 = time.perf_counter()
        for chunk in copier.read_range(
            bench.dev, 0, bench.total, buffer_size=buffer_size, depth=depth
        ):
            pattern.check(pos, chunk)
            pos += len(chunk)
        m = Measurement(bench.total, time.perf_counter() - t0)
        if pos != bench.total:
            raise h.CopyMismatch(f"read_range yielded {pos} bytes, expected {bench.total}")
        return m

    d = depth if impl in COPIER_IMPLS else 0
    return Case(group="read", impl=impl, fn=fn, buffer_size=buffer_size, depth=d)


def ranged_case(impl: str, buffer_size: int = GET_BUFFER, depth: int = GET_DEPTH) -> Case:
    """``RANGED_READS`` ranged reads of ``RANGED_SIZE`` bytes at random byte offsets, one after
    the other (a ranged download asks for one range); each is a ``read_range`` call of its own,
    timed from the call to its last chunk. Every byte is compared after the clock stops: fio
    does not look at the data, and a single read has nothing to overlap the comparison with
    (streaming reads compare inside the timed loop, where the readers run ahead). Reference:
    fio randread at the same block size, one I/O in flight."""

    def fn(bench: Bench) -> Measurement:
        bench.settle()
        if bench.current is None:
            bench.restore()
        assert bench.current is not None
        pattern = bench.patterns[bench.current]
        count = min(RANGED_READS, bench.total // RANGED_SIZE)
        if impl == "fio":
            return h.fio(
                bench.dev,
                "randread",
                RANGED_SIZE,
                bench.total,
                iodepth=1,
                io_size=count * RANGED_SIZE,
            )
        copier = bench.copier(impl)
        rng = random.Random()
        offsets = [rng.randrange(bench.total - RANGED_SIZE + 1) for _ in range(count)]
        seconds = 0.0
        for offset in offsets:
            t0 = time.perf_counter()
            chunks = list(
                copier.read_range(
                    bench.dev, offset, RANGED_SIZE, buffer_size=buffer_size, depth=depth
                )
            )
            seconds += time.perf_counter() - t0
            pos = offset
            for chunk in chunks:  # untimed: fio does not look at the data either
                pattern.check(pos, chunk)
                pos += len(chunk)
            if pos != offset + RANGED_SIZE:
                raise h.CopyMismatch(f"read_range at {offset} yielded {pos - offset} bytes")
        return Measurement(count * RANGED_SIZE, seconds)

    d = depth if impl in COPIER_IMPLS else 0
    return Case(group="ranged", impl=impl, fn=fn, buffer_size=RANGED_SIZE, depth=d)


def hash_case(name: str, near: int = 0) -> Case:
    """hashlib alone over the same data, 4 MiB updates; ``near`` tags a copy of the case run
    next to the cases of that buffer size (drift: compare only what ran side by side)."""
    return Case(
        group="hash",
        impl=f"hashlib-{name}",
        fn=lambda b: h.hash_speed(b.patterns[0], name),
        variant=f"near-{h.size_label(near)}" if near else "",
    )


def sparse_case(impl: str, kind: str, buffer_size: int = 4 * MiB, depth: int = 2) -> Case:
    """``kind`` sparse (90 % zeros) or dense, zero-skip on, no hashing, onto a fresh sparse file
    behind a loop device (as the simulator's loop backend); reports the allocated bytes."""

    def fn(bench: Bench) -> Measurement:
        pattern = bench.patterns[0]
        source: h.PatternSource | h.SparseSource
        expected: h.Expected
        if kind == "sparse":
            source = expected = h.SparseSource(pattern, SPARSE_ZERO_FRACTION, SPARSE_SEGMENT)
        else:
            source, expected = h.PatternSource(pattern), pattern
        backing = bench.workdir / "sparse-target.img"
        try:
            with h.loop_device(backing, bench.total, bench.sector_size) as dev:
                t0 = time.perf_counter()
                written = bench.copier(impl).write_stream(
                    source,
                    dev,
                    size=bench.total,
                    skip_zeros=True,
                    buffer_size=buffer_size,
                    depth=depth,
                )
                seconds = time.perf_counter() - t0
                if written != bench.total:
                    raise h.CopyMismatch(f"write_stream returned {written}, not {bench.total}")
                allocated = h.allocated_bytes(backing)
                h.verify_device(dev, expected)
        finally:
            backing.unlink(missing_ok=True)
        extra = {"allocated": allocated, "allocated_fraction": allocated / bench.total}
        if isinstance(source, h.SparseSource):
            extra["data_fraction"] = source.data_bytes / bench.total
            extra["per_buffer_bound"] = source.written_bound(buffer_size)
        return Measurement(bench.total, seconds, extra)

    return Case(
        group="sparse", impl=impl, fn=fn, buffer_size=buffer_size, depth=depth, variant=kind
    )


# --------------------------------------------------------------------------------------------
# Configurations and rounds


@dataclass
class Config:
    """What one run measures."""

    mode: str
    total: int
    buffer_sizes: list[int]
    rounds: int
    depths: list[int]  # compiled core; the python twin runs at the default depth
    default_depth: int = 2
    sparse_buffer: int = 4 * MiB
    store_total: int = 512 * MiB  # Store.add/get: attach and REST costs are per image
    store_read_total: int = 2 << 30  # Store.get against dd/fio (issue 15 measured 2 GiB)
    rss_total: int = 4 << 30
    growth_gib: list[float] = field(default_factory=lambda: [1.5, 2.5])  # unknown-size uploads
    reads_only: bool = False  # only the read comparisons of issue 15

    def read_blocks(self) -> list[list[Case]]:
        """read_range at the Store's settings next to dd and fio; ranged reads next to fio."""
        return [
            [
                read_case("dd", GET_BUFFER),
                read_case("fio", GET_BUFFER),
                read_case("compiled", GET_BUFFER, depth=GET_DEPTH),
                read_case("python", GET_BUFFER, depth=GET_DEPTH),
            ],
            [ranged_case("fio"), ranged_case("compiled"), ranged_case("python")],
        ]

    def blocks(self) -> list[list[Case]]:
        """Cases grouped so that everything compared at one buffer size runs side by side."""
        if self.reads_only:
            return self.read_blocks()
        blocks: list[list[Case]] = [self.read_blocks()[1]]
        for bs in self.buffer_sizes:
            writes = [write_case("dd", bs), write_case("fio", bs)]
            reads = [read_case("dd", bs), read_case("fio", bs)]
            for d in self.depths:
                writes.append(write_case("compiled", bs, depth=d))
                reads.append(read_case("compiled", bs, depth=d))
            writes.append(write_case("python", bs, depth=self.default_depth))
            reads.append(read_case("python", bs, depth=self.default_depth))
            writes.append(write_case("buffered", bs))
            reads.append(read_case("buffered", bs))
            for impl in IMPLS:
                # The hashed buffered baseline is slow and only informative: one size in quick.
                if impl == "buffered" and self.mode == "quick" and bs != 4 * MiB:
                    continue
                writes.append(write_case(impl, bs, hashing=True, depth=self.default_depth))
            for d in self.depths:
                if d != self.default_depth:  # the compiled core's hashed writes at each depth
                    writes.append(write_case("compiled", bs, hashing=True, depth=d))
            writes.append(hash_case("md5", near=bs))
            blocks.append(writes + reads)
        blocks.append([hash_case(name) for name in HASHES])
        blocks.append(
            [
                sparse_case(impl, kind, self.sparse_buffer, self.default_depth)
                for impl in COPIER_IMPLS
                for kind in ("sparse", "dense")
            ]
        )
        return blocks


def quick_config() -> Config:
    return Config(
        mode="quick",
        total=256 * MiB,
        buffer_sizes=[256 * 1024, 1 * MiB, 4 * MiB, 16 * MiB],
        rounds=4,
        depths=[2, 4],
    )


def reads_config() -> Config:
    """``--reads``: the read comparisons only (read_range, ranged reads, Store.get)."""
    return Config(
        mode="reads",
        total=2 << 30,
        buffer_sizes=[GET_BUFFER],
        rounds=5,
        depths=[GET_DEPTH],
        reads_only=True,
    )


def full_config() -> Config:
    return Config(
        mode="full",
        total=1 << 30,
        buffer_sizes=[64 * 1024, 256 * 1024, 1 * MiB, 4 * MiB, 16 * MiB, 64 * MiB],
        rounds=5,
        depths=[1, 2, 4],
        growth_gib=[1.5, 2.5, 10, 40],
    )


def _order(items: Sequence[Any], r: int) -> list[Any]:
    """Round ``r``'s order of ``items``: as given in round 0, then a fresh shuffle (seeded by
    the round, so runs repeat). A rotation keeps every case behind the same neighbour, and
    the case after fio's write paid for the device's write-back in every round (compiled
    16 MiB writes came out at 0.36 x the twin's that way, 1.0 x when run alone)."""
    order = list(items)
    if r:
        random.Random(r).shuffle(order)
    return order


def run_rounds(
    bench: Bench,
    blocks: Sequence[Sequence[Case]],
    rounds: int,
    log: Callable[[str], None] = lambda s: None,
) -> dict[str, list[Measurement]]:
    """Run every case once per round, in a new order each round (``_order``) so that no case
    always follows the same one.  Within a block writes come before reads (reads need known
    data)."""
    results: dict[str, list[Measurement]] = {c.id: [] for block in blocks for c in block}
    for r in range(rounds):
        t0 = time.perf_counter()
        for block in _order(blocks, r):
            writes = [c for c in block if c.group != "read"]
            reads = [c for c in block if c.group == "read"]
            for case in _order(writes, r) + _order(reads, r):
                m = case.run(bench)
                results[case.id].append(m)
                log(f"round {r + 1}/{rounds} {case.id:<40} {m.mbps:9.0f} MB/s")
        log(f"round {r + 1}/{rounds} took {time.perf_counter() - t0:.0f} s")
    return results


# --------------------------------------------------------------------------------------------
# Statistics


def summary(values: Sequence[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def per_round_ratio(
    results: dict[str, list[Measurement]], num: str | Sequence[str], den: str | Sequence[str]
) -> list[float]:
    """Ratio of throughputs taken in the same round; a list of ids means the best of them."""
    nums = [num] if isinstance(num, str) else list(num)
    dens = [den] if isinstance(den, str) else list(den)
    if not all(i in results and results[i] for i in nums + dens):
        return []
    n = min(len(results[i]) for i in nums + dens)
    out = []
    for r in range(n):
        a = max(results[i][r].mbps for i in nums)
        b = max(results[i][r].mbps for i in dens)
        out.append(a / b)
    return out


@contextlib.contextmanager
def scratch_dir(parent: str | None = None) -> Iterator[Path]:
    """A scratch directory on a real disk (loop backing files cannot live on tmpfs with dio)."""
    path = Path(tempfile.mkdtemp(prefix="datera-bench-", dir=parent))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def log_stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def environment() -> dict[str, Any]:
    """Facts about the machine that the figures depend on."""
    info: dict[str, Any] = {
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
        "kernel": os.uname().release,
        "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "loadavg": os.getloadavg(),
    }
    with contextlib.suppress(OSError):
        info["openssl"] = __import__("ssl").OPENSSL_VERSION
    info.update(cpu_facts())
    info["transparent_hugepage"] = host.thp_mode()  # "never" halves the copier's read speed
    return info


#: The CPU flags the figures depend on: hashing (AVX2/AVX-512, SHA) and copies.
CPU_FLAGS = ("avx2", "avx512f", "avx512bw", "avx512vl", "sha_ni", "erms", "fsrm")


def cpu_facts(cpuinfo: str = "/proc/cpuinfo") -> dict[str, Any]:
    """The CPU model and which of ``CPU_FLAGS`` it has."""
    model, flags = "?", set[str]()
    with contextlib.suppress(OSError):
        for line in Path(cpuinfo).read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and model == "?":
                model = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = set(value.split())
    return {"cpu_model": model, "cpu_flags": [f for f in CPU_FLAGS if f in flags]}
