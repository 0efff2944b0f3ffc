"""The growth and lingering-attachment parts of ``./dev bench`` in smoke mode: one small case
each, every figure the report reads present, and the report's verdicts derived from them."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import growth_probe, linger_probe, report

pytestmark = pytest.mark.root


def test_an_unknown_size_upload_past_one_gib_grows_once_to_the_smallest_volume(
    tmp_path: Path,
) -> None:
    # 1.25 GiB of 90 % zero blocks (skipped): the data path's full hashing, little disk.
    [case] = growth_probe.measure(tmp_path, [1.25], lambda msg: None, sparse_from=0)
    assert case["resizes"] == 1
    assert case["final_gib"] == case["smallest_gib"] == 2
    assert 0 < case["resize_s"] < case["upload_s"]
    final, share = report._growth_targets({"growth": [case]})
    assert final.passed is True and final.ratio == 1.0
    assert share.ratio == case["share"] and share.threshold == growth_probe.MAX_SHARE
    assert "| 1.25 GiB |" in "\n".join(growth_probe.table([case]))


def test_linger_probe_counts_one_attach_for_back_to_back_gets(tmp_path: Path) -> None:
    results = linger_probe.measure(tmp_path, 1, lambda msg: None)
    assert results["back_to_back"] == {"gets": linger_probe.BACK_TO_BACK, "attaches": 1}
    # tests/integration/test_store_rest_calls.py pins these; the probe must count the same.
    assert results["get ttfb cold"]["rest_calls"] == 5
    assert results["get ttfb lingering"]["rest_calls"] == 2
    assert results["get_size cold"]["rest_calls"] == 2
    ttfb, attaches = report._linger_targets({"linger": results})
    assert ttfb.ratio == results["get ttfb lingering"]["median_ms"] > 0
    assert attaches.passed is True
