"""Store.add / Store.get end to end on the loop simulator, and the peak-memory probe.

Smoke mode (``./dev test``): one small image, verified; ``run.py`` does the interleaved rounds
and the 4 GiB memory probe.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from benchmarks import harness as h
from benchmarks import rss_probe, store_bench, suite
from benchmarks.conftest import TOTAL

pytestmark = pytest.mark.root


def test_store_add_get(benchmark: Any, loop_simulator: Any, store_factory: Any) -> None:
    store = store_factory(loop_simulator)
    pattern = h.Pattern(11, TOTAL, 64 * h.MiB)

    def roundtrip() -> tuple[h.Measurement, h.Measurement]:
        uri, added = store_bench.add(store, pattern)
        got = store_bench.get(store, store.conf, uri, pattern)
        store_bench.delete(store, store.conf, uri)
        return added, got

    benchmark.group = "store"
    added, got = benchmark.pedantic(roundtrip, rounds=3, iterations=1)
    benchmark.extra_info.update(add_MBps=added.mbps, get_MBps=got.mbps)
    assert added.nbytes == got.nbytes == TOTAL
    assert loop_simulator.state()["app_instances"] == []


def test_store_add_unknown_size(loop_simulator: Any, store_factory: Any) -> None:
    """The path the memory probe takes: no size, the volume grows by datera_chunk_size."""
    store = store_factory(loop_simulator, chunk_size=h.GiB)
    pattern = h.Pattern(12, TOTAL, 64 * h.MiB)
    uri, added = store_bench.add(store, pattern, known_size=False)
    store_bench.get(store, store.conf, uri, pattern)
    store_bench.delete(store, store.conf, uri)
    assert added.nbytes == TOTAL


def test_rss_probe(loop_simulator: Any, tmp_path: Path) -> None:
    """The child process measures its peak RSS growth around one add and checks the md5."""
    md5 = h.Pattern(21, TOTAL, 64 * h.MiB, period=rss_probe.PERIOD).digest("md5")
    result = rss_probe.probe(loop_simulator, tmp_path / "locks", TOTAL, h.GiB, md5, timeout=120)
    assert result["verified"], result
    assert 0 < result["growth"] <= 4 * result["buffer_size"] + 32 * h.MiB


def test_store_reads_against_dd_and_fio(tmp_path: Path) -> None:
    """One round of Store.get, dd and fio on one volume file; every byte of the get compared."""
    h.ensure_fio()
    config = suite.quick_config()
    config.rounds = 1
    config.store_read_total = TOTAL
    reads = store_bench.run_reads(config, tmp_path, lambda msg: None)["store_reads"]
    assert reads["total"] == TOTAL
    assert all(len(reads[k]) == 1 and reads[k][0] > 0 for k in ("get_MBps", "dd_MBps", "fio_MBps"))
