"""Fixtures for the benchmark files: one bench (loop device + source data) per module.

Under ``./dev test`` pytest-benchmark is disabled (``--benchmark-disable``): every benchmark body
runs once on ``DATERA_BENCH_MIB`` MiB (default 8) and still verifies what it copied.  For timed
pytest-benchmark runs use e.g. ``DATERA_BENCH_MIB=512 pytest benchmarks --benchmark-enable``;
``python -m benchmarks.run`` is the interleaved runner that produces the committed results.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from benchmarks import harness as h
from benchmarks.suite import Bench

#: Bytes per transfer in the pytest benchmarks (tiny in smoke mode).
TOTAL = int(os.environ.get("DATERA_BENCH_MIB", "8")) * h.MiB
BUFFER_SIZES = [64 * h.KiB, 256 * h.KiB, 1 * h.MiB, 4 * h.MiB, 16 * h.MiB, 64 * h.MiB]
#: dd/fio need whole blocks: reference runs only where a block fits the transfer.
REF_SIZES = [bs for bs in BUFFER_SIZES if bs <= TOTAL]


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bench]:
    if os.geteuid() != 0:
        pytest.skip("needs root for loop devices")
    workdir = tmp_path_factory.mktemp("bench")
    with Bench(workdir, TOTAL, max(BUFFER_SIZES)) as b:
        yield b


@pytest.fixture(scope="session")
def fio_available() -> None:
    """fio is installed by ./dev bench; under pytest its absence is an error, not a skip."""
    h.ensure_fio()
