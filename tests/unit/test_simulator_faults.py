"""Simulator fault injection (``/_sim/faults`` and the Python API)."""

from __future__ import annotations

import time

import pytest
import requests

from datera_glance.simulator import Simulator
from tests.plugins.simulator import Edf


def _token(sim: Simulator) -> dict[str, str]:
    """The header every ``/_sim/`` request needs."""
    return {"Sim-Token": sim.control_token}


def _add_fault(sim: Simulator, **fault: object) -> None:
    r = requests.post(f"{sim.url}/_sim/faults", json=fault, headers=_token(sim), timeout=10)
    assert r.status_code == 201, r.text


def test_status_fault_with_count_and_retry_after(edf: Edf) -> None:
    _add_fault(edf.sim, method="GET", path="^/system$", status=503, count=2, retry_after=3)
    for _ in range(2):
        r = edf.session.get(edf.url("/system"), timeout=10)
        assert r.status_code == 503
        assert r.headers["Retry-After"] == "3"
        body = r.json()
        assert body["http"] == 503 and body["message"] and body["name"]
        assert set(body) >= {"name", "code", "http", "message", "errors"}
    edf.call("GET", "/system")
    assert edf.sim.state()["faults"] == []


def test_status_fault_custom_name_and_message(edf: Edf) -> None:
    edf.sim.add_fault("GET", "/system", status=500, message="REST server is still initializing")
    body = edf.call("GET", "/system", expect=500)
    assert body["name"] == "InternalError"
    assert body["message"] == "REST server is still initializing"


def test_skip_lets_first_requests_through(edf: Edf) -> None:
    edf.sim.add_fault("POST", "/app_instances", status=409, skip=1, count=1)
    edf.create_ai("skip-one")
    assert edf.create_ai("skip-two", expect=409)["name"] == "ConflictError"
    edf.create_ai("skip-three")
    names = {a["name"] for a in edf.sim.state()["app_instances"]}
    assert names == {"skip-one", "skip-three"}


def test_fault_matches_method_and_path(edf: Edf) -> None:
    edf.sim.add_fault("PUT", r"/app_instances/[^/]+$", status=503, count=None)
    ai = edf.create_ai("match-ai")["data"]
    edf.call("GET", f"/app_instances/{ai['id']}")
    edf.call("PUT", f"/app_instances/{ai['id']}/metadata", json={"a": "b"})
    for _ in range(3):  # count=None: every match
        edf.call("PUT", f"/app_instances/{ai['id']}", json={"admin_state": "offline"}, expect=503)
    r = requests.delete(f"{edf.sim.url}/_sim/faults", headers=_token(edf.sim), timeout=10)
    assert r.status_code == 200
    edf.call("PUT", f"/app_instances/{ai['id']}", json={"admin_state": "offline"})


def test_drop_closes_without_answer_and_changes_nothing(edf: Edf) -> None:
    _add_fault(edf.sim, method="POST", path="/app_instances", drop=True)
    with pytest.raises(requests.ConnectionError):
        edf.session.post(edf.url("/app_instances"), json={"name": "dropped-ai"}, timeout=10)
    assert edf.sim.state()["app_instances"] == []
    edf.create_ai("after-drop")


def test_drop_after_applies_then_loses_answer(edf: Edf) -> None:
    edf.sim.add_fault("POST", "/app_instances", drop=True, after=True)
    with pytest.raises(requests.ConnectionError):
        edf.session.post(edf.url("/app_instances"), json={"name": "lost-answer"}, timeout=10)
    assert [a["name"] for a in edf.sim.state()["app_instances"]] == ["lost-answer"]
    # The retry of a POST whose answer was lost sees a conflict, as on a real cluster.
    assert edf.call("POST", "/app_instances", json={"name": "lost-answer"}, expect=409)


def test_delay(edf: Edf) -> None:
    _add_fault(edf.sim, method="GET", path="/system", delay=0.4)
    start = time.monotonic()
    edf.call("GET", "/system")
    assert time.monotonic() - start >= 0.4
    start = time.monotonic()
    edf.call("GET", "/system")
    assert time.monotonic() - start < 0.4


def test_delay_is_a_read_timeout_for_clients(edf: Edf) -> None:
    edf.sim.add_fault("GET", "/system", delay=1.0)
    with pytest.raises(requests.ReadTimeout):
        edf.session.get(edf.url("/system"), timeout=0.3)


def test_a_timed_out_request_settles_after_its_delay(edf: Edf) -> None:
    """The client gives up on a delayed POST, yet it takes effect when its delay ends:
    ``wait_settled`` is how a test knows the cluster's contents are final."""
    edf.sim.add_fault("POST", "^/app_instances$", delay=0.8)
    with pytest.raises(requests.ReadTimeout):
        edf.session.post(edf.url("/app_instances"), json={"name": "slow"}, timeout=0.2)
    assert not edf.sim.faults.wait_settled(timeout=0.1)
    assert edf.sim.faults.wait_settled(timeout=10)
    assert [ai["name"] for ai in edf.sim.state()["app_instances"]] == ["slow"]
    assert edf.sim.faults.wait_settled(timeout=0), "nothing in flight: settled at once"


def test_fault_on_login(simulator: Simulator) -> None:
    simulator.add_fault("PUT", "^/login$", status=503)
    edf = Edf(simulator, login=False)
    edf.call("PUT", "/login", json={"name": "admin", "password": "password"}, expect=503)
    edf.login()


def test_bad_fault_requests_are_400(simulator: Simulator) -> None:
    url = f"{simulator.url}/_sim/faults"
    for bad in (
        {"path": "/x"},
        {"path": "(", "status": 500},
        {"path": "/x", "oops": 1},
        {"status": 500},
        {"path": "/x", "status": 200},
        {"path": "/x", "status": "503"},
        {"path": "/x", "status": 503, "count": 0},
        {"path": "/x", "delay": -1},
    ):
        r = requests.post(url, json=bad, headers=_token(simulator), timeout=10)
        assert r.status_code == 400, bad
    assert simulator.state()["faults"] == []
    assert requests.get(f"{simulator.url}/_sim/nothing", timeout=10).status_code == 404
