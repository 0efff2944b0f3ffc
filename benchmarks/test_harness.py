"""The benchmarks' own checks: a fast wrong copy must fail, and the targets are computed
from interleaved per-round ratios."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from benchmarks import harness as h
from benchmarks import report, suite
from benchmarks.harness import MiB
from benchmarks.suite import Bench
from datera_glance import sweep


def test_pattern_detects_misplaced_data() -> None:
    p = h.Pattern(1, 3 * MiB, MiB, period=MiB + 4097)
    src = h.PatternSource(p)
    chunks = []
    while c := src.read(MiB):
        chunks.append(bytes(c))
    pos = 0
    for c in chunks:
        p.check(pos, c)
        pos += len(c)
    assert pos == 3 * MiB
    with pytest.raises(h.CopyMismatch):
        p.check(MiB, chunks[0])  # the right bytes at the wrong offset
    bad = bytearray(chunks[1])
    bad[12345] ^= 1
    with pytest.raises(h.CopyMismatch):
        p.check(len(chunks[0]), bad)


def test_sparse_source_layout() -> None:
    p = h.Pattern(1, 64 * MiB, 4 * MiB)
    s = h.SparseSource(p, 0.9, MiB)
    data = bytearray()
    while c := s.read(3 * MiB):
        data += c
    assert len(data) == 64 * MiB
    s.check(0, data)
    zero = bytes(MiB)
    zeros = sum(1 for i in range(64) if data[i * MiB : (i + 1) * MiB] == zero)
    assert zeros == 64 - s.data_bytes // MiB == 58
    assert s.data_bytes <= s.written_bound(4 * MiB) <= 64 * MiB


class _NoWrite:
    """Consumes the source and feeds the hashers, but writes nothing."""

    core_name = "broken"

    def write_stream(
        self, source: Any, path: str, *, size: int, hashers: Any = (), **kw: Any
    ) -> int:
        n = 0
        while chunk := source.read(MiB):
            for hasher in hashers:
                hasher.update(chunk)
            n += len(chunk)
        return n


class _CorruptOne:
    """The real copier, but one buffer of the data goes out as zeros (hashes still right)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def write_stream(self, source: Any, path: str, *, hashers: Any = (), **kw: Any) -> int:
        def chunks() -> Iterator[bytes]:
            i = 0
            while chunk := source.read(MiB):
                data = bytes(chunk)
                for hasher in hashers:
                    hasher.update(data)
                yield bytes(len(data)) if i == 3 else data
                i += 1

        return int(self.inner.write_stream(chunks(), path, **kw))

    def read_range(self, *a: Any, **kw: Any) -> Any:
        return self.inner.read_range(*a, **kw)


class _BadHash:
    """Writes correctly but hashes only half of the stream."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def write_stream(self, source: Any, path: str, *, hashers: Any = (), **kw: Any) -> int:
        half = [hashlib.md5()]  # a stand-in the real hashers never see
        return int(self.inner.write_stream(source, path, hashers=half, **kw))


class _SwappedReads:
    """Yields the right bytes in the wrong order."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def read_range(self, *a: Any, **kw: Any) -> Iterator[bytes]:
        chunks = list(self.inner.read_range(*a, **kw))
        chunks[0], chunks[1] = chunks[1], chunks[0]
        yield from chunks


@pytest.mark.root
@pytest.mark.parametrize(
    ("wrap", "hashing"),
    [
        (lambda inner: _NoWrite(), False),
        (_CorruptOne, False),
        (_BadHash, True),
    ],
    ids=["writes-nothing", "corrupts-one-buffer", "wrong-hashes"],
)
def test_wrong_write_fails(bench: Bench, wrap: Any, hashing: bool) -> None:
    real = suite.get_copier("python")
    bench.copiers["python"] = wrap(real)
    try:
        case = suite.write_case("python", MiB, hashing=hashing)
        with pytest.raises(h.CopyMismatch):
            case.run(bench)
        # The same case with the real copier passes (the check is not just always failing).
        bench.copiers["python"] = real
        case.run(bench)
    finally:
        bench.copiers["python"] = real


@pytest.mark.root
def test_wrong_read_fails(bench: Bench) -> None:
    real = suite.get_copier("python")
    bench.copiers["python"] = _SwappedReads(real)
    try:
        with pytest.raises(h.CopyMismatch):
            suite.read_case("python", MiB).run(bench)
    finally:
        bench.copiers["python"] = real


def _doc(rates: dict[str, list[float]]) -> dict[str, Any]:
    cfg = suite.Config(mode="t", total=MiB, buffer_sizes=[MiB], rounds=4, depths=[2])
    cases = {
        cid: {"MBps": r, "median": sorted(r)[len(r) // 2], "min": min(r), "max": max(r)}
        for cid, r in rates.items()
    }
    from dataclasses import asdict

    return {"config": asdict(cfg), "cases": cases}


def test_ratios_are_per_round() -> None:
    # The disk drifts: A and B both halve in rounds 3-4; per-round ratios stay at 0.95.
    doc = _doc(
        {
            "write/compiled/1M/d2": [950, 950, 475, 475],
            "write/dd/1M": [1000, 1000, 500, 500],
            "write/fio/1M": [900, 900, 450, 450],
        }
    )
    assert (
        report.ratios(doc, "write/compiled/1M/d2", ["write/dd/1M", "write/fio/1M"])
        == [pytest.approx(0.95)] * 4
    )
    target = report._vs_reference(doc, "write")
    assert target.ratio == pytest.approx(0.95)
    assert target.passed
    doc["cases"]["write/compiled/1M/d2"]["MBps"] = [850, 850, 425, 425]
    assert report._vs_reference(doc, "write").passed is False


def test_rounds_change_which_case_follows_which() -> None:
    """A rotation kept every case behind the same neighbour in every round; the order must
    put some case behind a different one from round to round, and keep every case."""
    items = list(range(6))
    orders = [suite._order(items, r) for r in range(4)]
    assert orders[0] == items and all(sorted(o) == items for o in orders)
    followers = [{o[i]: o[i + 1] for i in range(len(o) - 1)} for o in orders]
    assert any(f[k] != followers[0][k] for f in followers[1:] for k in f if k in followers[0])
    assert orders == [suite._order(items, r) for r in range(4)]  # the same on every run


def test_the_report_recommends_by_the_bench_sweep_rule() -> None:
    """One rule (``datera_glance.sweep.recommend``): the report's pick on the suite's medians is
    the pick ``datera-glance bench`` makes on the same rates, memory limit included."""
    rates = {  # (buffer, depth): (write, read, hashed write)
        (MiB, 2): (800.0, 800.0, 800.0),
        (MiB, 4): (960.0, 960.0, 960.0),  # within 5 % of the best, smallest buffer
        (4 * MiB, 4): (1000.0, 1000.0, 1000.0),
        (16 * MiB, 8): (5000.0, 5000.0, 5000.0),  # (8 + 2) x 16 MiB > 4 x 16 MiB + 32 MiB
    }
    doc = _doc({})
    doc["config"].update(buffer_sizes=[MiB, 4 * MiB, 16 * MiB], depths=[2, 4, 8], default_depth=2)
    for (bs, d), (write, read, hashed) in rates.items():
        for cid, rate in (
            (report._copier_id("write", "compiled", bs, d), write),
            (report._copier_id("read", "compiled", bs, d), read),
            (report._copier_id("write", "compiled", bs, d, True), hashed),
        ):
            doc["cases"][cid] = {"median": rate}
    picked = report.recommend(doc)
    best = sweep.recommend([sweep.Point(bs, d, *r) for (bs, d), r in rates.items()])
    assert best is not None and (best.buffer_size, best.depth) == (MiB, 4)
    assert (picked["datera_io_buffer_size"], picked["datera_io_depth"]) == (
        best.buffer_size,
        best.depth,
    )
    assert picked["score_MBps"] == best.score
    assert "16M/d8" not in picked["scores"] and len(picked["scores"]) == 3


@pytest.mark.parametrize("name", ["quick", "full"])
def test_saved_results_keep_their_recommendation(name: str) -> None:
    """The saved results re-evaluated with today's rule recommend what they recorded."""
    doc = json.loads((Path(report.__file__).parent / "results" / f"{name}.json").read_text())
    recorded = doc["recommendation"]
    again = report.recommend(doc)
    assert (again["datera_io_buffer_size"], again["datera_io_depth"]) == (
        recorded["datera_io_buffer_size"],
        recorded["datera_io_depth"],
    )
