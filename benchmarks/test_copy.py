"""Write and read throughput: implementation x buffer size x hashing, plus dd/fio/hashlib.

Each benchmark verifies its copy (read-back compare, hashes equal hashlib's); see suite.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from benchmarks import suite
from benchmarks.conftest import BUFFER_SIZES, REF_SIZES
from benchmarks.harness import size_label
from benchmarks.suite import Bench

pytestmark = pytest.mark.root

ROUNDS = 3


def _measure(benchmark: Any, bench: Bench, case: suite.Case) -> None:
    benchmark.group = f"{case.group}{'+hash' if case.hashing else ''}"
    benchmark.extra_info.update(case.describe())
    # Timed: the operation alone; a write's read-back runs untimed in the next round's setup
    # and after the last round (dd/fio timings here include their process start).
    m = benchmark.pedantic(case.fn, args=(bench,), setup=bench.settle, rounds=ROUNDS)
    bench.settle()
    benchmark.extra_info["MBps"] = m.mbps
    assert m.nbytes == bench.total


@pytest.mark.parametrize("hashing", [False, True], ids=["nohash", "md5+sha512"])
@pytest.mark.parametrize("buffer_size", BUFFER_SIZES, ids=size_label)
@pytest.mark.parametrize("impl", suite.IMPLS)
def test_write(benchmark: Any, bench: Bench, impl: str, buffer_size: int, hashing: bool) -> None:
    _measure(benchmark, bench, suite.write_case(impl, buffer_size, hashing))


@pytest.mark.parametrize("buffer_size", BUFFER_SIZES, ids=size_label)
@pytest.mark.parametrize("impl", suite.IMPLS)
def test_read(benchmark: Any, bench: Bench, impl: str, buffer_size: int) -> None:
    _measure(benchmark, bench, suite.read_case(impl, buffer_size))


@pytest.mark.usefixtures("fio_available")
@pytest.mark.parametrize("buffer_size", REF_SIZES, ids=size_label)
@pytest.mark.parametrize("tool", ["dd", "fio"])
@pytest.mark.parametrize("op", ["write", "read"])
def test_reference(benchmark: Any, bench: Bench, op: str, tool: str, buffer_size: int) -> None:
    make = suite.write_case if op == "write" else suite.read_case
    _measure(benchmark, bench, make(tool, buffer_size))


@pytest.mark.parametrize("name", suite.HASHES)
def test_hashlib(benchmark: Any, bench: Bench, name: str) -> None:
    _measure(benchmark, bench, suite.hash_case(name))


@pytest.mark.parametrize("kind", ["sparse", "dense"])
@pytest.mark.parametrize("impl", suite.COPIER_IMPLS)
def test_sparse(benchmark: Any, bench: Bench, impl: str, kind: str) -> None:
    """Zero-skip on, no hashing; the allocation of the fresh target is recorded and bounded."""
    case = suite.sparse_case(impl, kind)
    benchmark.group = "sparse"
    m = benchmark.pedantic(case.run, args=(bench,), rounds=ROUNDS, iterations=1)
    benchmark.extra_info.update(m.extra)
    if kind == "dense":
        assert m.extra["allocated"] >= bench.total
    else:
        # At most every buffer that holds data (a finer zero scan allocates less).
        assert m.extra["allocated"] <= m.extra["per_buffer_bound"] < bench.total


@pytest.mark.usefixtures("fio_available")
@pytest.mark.parametrize("impl", [*suite.COPIER_IMPLS, "fio"])
def test_ranged(benchmark: Any, bench: Bench, impl: str) -> None:
    """1 MiB ranged reads at random offsets (every byte compared) and fio randread."""
    _measure(benchmark, bench, suite.ranged_case(impl))
