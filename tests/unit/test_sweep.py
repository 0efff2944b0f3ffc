"""The bench sweep (``datera_glance.sweep``): the recommendation rule and one real run."""

from __future__ import annotations

import os
from pathlib import Path

from oslo_utils import units

from datera_glance import chunkio, sweep


def point(bs: int, depth: int, rate: float) -> sweep.Point:
    return sweep.Point(bs, depth, rate, rate, rate)


def test_recommend_prefers_the_smallest_buffer_within_the_noise() -> None:
    points = [
        point(units.Mi, 2, 800.0),
        point(4 * units.Mi, 4, 1000.0),
        point(16 * units.Mi, 4, 970.0),
        point(units.Mi, 4, 960.0),  # within 5 % of the best, smaller buffer
    ]
    best = sweep.recommend(points)
    assert best is not None and (best.buffer_size, best.depth) == (units.Mi, 4)


def test_recommend_skips_settings_that_use_too_much_memory() -> None:
    # (8 + 2) x 16 MiB = 160 MiB > 4 x 16 MiB + 32 MiB
    points = [point(16 * units.Mi, 8, 2000.0), point(4 * units.Mi, 2, 500.0)]
    best = sweep.recommend(points)
    assert best is not None and (best.buffer_size, best.depth) == (4 * units.Mi, 2)
    assert sweep.recommend([point(16 * units.Mi, 8, 2000.0)]) is None


def test_score_is_the_geometric_mean() -> None:
    assert round(sweep.Point(units.Mi, 2, 100.0, 400.0, 25.0).score, 6) == 100.0


def test_sweep_runs_on_a_scratch_file(tmp_path: Path) -> None:
    path = tmp_path / "scratch"
    size = 8 * units.Mi + 4096
    with open(path, "wb") as f:
        os.posix_fallocate(f.fileno(), 0, size)
    plan = sweep.Plan(size, (units.Mi,), (1, 2))
    seen: list[sweep.Point] = []
    points = sweep.Sweep(str(path), plan, copier=chunkio.get_copier("python")).run(seen.append)
    assert points == seen and [(p.buffer_size, p.depth) for p in points] == [
        (units.Mi, 1),
        (units.Mi, 2),
    ]
    assert all(p.write_MBps > 0 and p.read_MBps > 0 and p.hashed_write_MBps > 0 for p in points)
    assert path.stat().st_size == size
