"""The lookup benchmark in smoke mode: small tenants, one round, every result checked."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import lookup_bench, report

pytestmark = pytest.mark.root


def test_one_round_of_lookups_in_two_tenants(tmp_path: Path) -> None:
    lookups = lookup_bench.measure(tmp_path, 1, (10, 200), lambda msg: None)
    for size in ("10", "200"):
        assert set(lookups["ms"][size]) == set(lookup_bench.OPERATIONS)
        assert all(len(ms) == 1 and ms[0] > 0 for ms in lookups["ms"][size].values())
    # The same REST calls whatever the tenant holds (tests/integration/test_store_rest_calls.py
    # pins which).
    assert lookups["calls"]["10"] == lookups["calls"]["200"]
    assert sum(lookups["calls"]["10"]["get_size"].values()) == 2
    doc = {"lookups": lookups}
    targets = report._lookup_targets(doc)
    assert [t.name.split()[0] for t in targets] == list(lookup_bench.OPERATIONS)
    assert all(t.ratio is not None and t.threshold == 1.2 for t in targets)
    table = "\n".join(lookup_bench.table(lookups))
    assert "| get_size |" in table and "200 app instances" in table
