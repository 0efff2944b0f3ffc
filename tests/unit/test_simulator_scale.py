"""Simulator: a request costs the same with 10 or 1,000 app instances (counted, not timed).

The counts come from a ``Work`` injected into the simulator: objects serialised for
persistence, bytes written, app instances rendered, objects scanned by listing filters. Before
the journal, every change serialised the whole state (1,010 objects here) and the name filter
rendered every app instance of the tenant.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import requests
from oslo_utils import units

from datera_glance.simulator import Simulator
from datera_glance.simulator.work import Work
from tests.plugins.simulator import Edf


@pytest.fixture
def counted(simulator_factory: Callable[..., Simulator]) -> tuple[Simulator, Work]:
    work = Work()
    return simulator_factory(work=work, capacity_bytes=2000 * units.Gi), work


def _cost(work: Work, call: Callable[[], object]) -> Work:
    before = work.copy()
    call()
    return work.since(before)


def _same(small: Work, large: Work) -> bool:
    """Equal counts; bytes equal up to the journal's sequence number growing a few digits."""
    counts = ("serialized", "rendered", "scanned")
    return all(getattr(small, c) == getattr(large, c) for c in counts) and (
        abs(large.written - small.written) <= 8
    )


def test_create_costs_the_same_at_10_and_1010_app_instances(
    counted: tuple[Simulator, Work],
) -> None:
    sim, work = counted
    edf = Edf(sim)
    sim.seed_app_instances(10)
    small = _cost(work, lambda: edf.create_ai("flat-a"))
    sim.seed_app_instances(1000, prefix="more-")
    large = _cost(work, lambda: edf.create_ai("flat-b"))
    assert small.serialized == large.serialized == 1  # the new app instance, not the state
    assert small.rendered == large.rendered == 1
    assert small.scanned == large.scanned == 0
    assert _same(small, large)  # same-length names: the same journal line, give or take seq


@pytest.mark.parametrize(
    "request_",
    [
        ("PUT", "/metadata", {"type": "image"}),
        ("PUT", "", {"admin_state": "offline"}),
        ("GET", "", None),
        ("GET", "/storage_instances/storage-1", None),
    ],
    ids=["metadata", "offline", "get-by-id", "get-si"],
)
def test_other_requests_cost_the_same_at_10_and_1010(
    counted: tuple[Simulator, Work], request_: tuple[str, str, dict | None]
) -> None:
    """``GET /app_instances/<id>`` is a direct lookup on EDF, and here: nothing is scanned."""
    sim, work = counted
    edf = Edf(sim)
    method, tail, body = request_
    sim.seed_app_instances(9)
    ids = [edf.create_ai("cost-a")["data"]["id"], edf.create_ai("cost-b")["data"]["id"]]
    small = _cost(work, lambda: edf.call(method, f"/app_instances/{ids[0]}{tail}", json=body))
    sim.seed_app_instances(1000, prefix="more-")
    large = _cost(work, lambda: edf.call(method, f"/app_instances/{ids[1]}{tail}", json=body))
    assert _same(small, large)
    assert large.scanned == 0 and large.serialized <= 1


def test_delete_costs_the_same_at_10_and_1010(counted: tuple[Simulator, Work]) -> None:
    sim, work = counted
    edf = Edf(sim)
    sim.seed_app_instances(10)
    ids = [edf.create_ai(f"gone-{c}")["data"]["id"] for c in "ab"]
    small = _cost(
        work, lambda: edf.call("DELETE", f"/app_instances/{ids[0]}", json={"force": True})
    )
    sim.seed_app_instances(1000, prefix="more-")
    large = _cost(
        work, lambda: edf.call("DELETE", f"/app_instances/{ids[1]}", json={"force": True})
    )
    assert _same(small, large)
    assert large.serialized == 0 and large.rendered == 1  # a removal is a key, not an object


def test_name_filter_scans_the_tenant_but_renders_only_matches(
    counted: tuple[Simulator, Work],
) -> None:
    """A filtered listing costs a scan of the tenant on EDF: it must not become a lookup here.

    The scan covers the request's tenant only (other tenants' app instances are not looked at)
    and renders only what matches.
    """
    sim, work = counted
    edf = Edf(sim)
    edf.call("POST", "/tenants", json={"name": "small_tenant"})
    sim.seed_app_instances(3, tenant="/root/small_tenant")
    sim.seed_app_instances(500)
    wanted = edf.create_ai("needle-1")["data"]
    params = {"filter": "match(name,^needle-1$)"}
    cost = _cost(work, lambda: edf.call("GET", "/app_instances", params=params))
    assert cost.scanned == 501 and cost.rendered == 1
    page = edf.call("GET", "/app_instances", params=params)
    assert [a["id"] for a in page["data"]] == [wanted["id"]]
    assert page["metadata"]["total_count"] == 1
    other = Edf(sim, tenant="/root/small_tenant")
    cost = _cost(work, lambda: other.call("GET", "/app_instances", params=params))
    assert cost.scanned == 3 and cost.rendered == 0


def test_filter_on_a_nested_attribute_still_works(edf: Edf) -> None:
    """Filters read the top-level fields without rendering; others fall back to the render."""
    edf.create_ai("nested-a")
    edf.create_ai("nested-b")
    body = edf.call("GET", "/app_instances", params={"filter": "match(storage_instances,volume-1)"})
    assert sorted(a["name"] for a in body["data"]) == ["nested-a", "nested-b"]
    body = edf.call("GET", "/app_instances", params={"sort": "-name", "limit": 1})
    assert [a["name"] for a in body["data"]] == ["nested-b"]


def test_seed_control_creates_like_post(simulator: Simulator) -> None:
    edf = Edf(simulator)
    edf.call("POST", "/tenants", json={"name": "bulk_tenant"})
    url = f"{simulator.url}/_sim/app_instances"
    body = {"count": 3, "tenant": "/root/bulk_tenant", "prefix": "bulk-", "size": 2}
    token = {"Sim-Token": simulator.control_token}
    r = requests.post(url, json=body, headers=token, timeout=30)
    assert r.status_code == 201 and r.json()["created"] == 3
    listed = Edf(simulator, tenant="/root/bulk_tenant").call("GET", "/app_instances")["data"]
    assert [a["name"] for a in listed] == ["bulk-0", "bulk-1", "bulk-2"]
    assert all(a["admin_state"] == "offline" for a in listed)
    assert {a["storage_instances"][0]["volumes"][0]["size"] for a in listed} == {2}
    assert simulator.state()["capacity"]["used"] == 6 * units.Gi
    # The same rules as POST: names are unique in the tenant, the schema and capacity apply.
    assert requests.post(url, json=body, headers=token, timeout=30).status_code == 409
    for bad, status in (
        ({"count": 1, "prefix": "x"}, 422),  # "x0" is too short a name for the schema
        ({"count": 1, "tenant": "/root/nowhere"}, 404),
        ({"count": 1, "size": 1000}, 422),  # InsufficientCapacityError
        ({"count": "3"}, 400),
        ({"count": 1, "colour": "red"}, 400),
    ):
        assert requests.post(url, json=bad, headers=token, timeout=30).status_code == status, bad
    assert len(simulator.state()["app_instances"]) == 3
