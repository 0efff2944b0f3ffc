"""The EDF simulator's REST API over real HTTP, with plain ``requests``."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import requests
from oslo_utils import units

import datera_glance
from datera_glance.simulator import Simulator
from tests.plugins.simulator import Edf

INVALID = "The key provided with the request does not correspond to a valid session."
IQN = "iqn.1993-08.org.debian:01:abcdef123456"


def _volume(ai: dict) -> dict:
    return ai["storage_instances"][0]["volumes"][0]


# ---- login and sessions ------------------------------------------------------------------


@pytest.mark.parametrize("version", ["2.1", "2.2"])
def test_login_returns_bare_key(simulator: Simulator, version: str) -> None:
    r = requests.put(
        f"{simulator.url}/v{version}/login",
        json={"name": "admin", "password": "password"},
        timeout=10,
    )
    assert r.status_code == 200
    body = r.json()
    assert set(body) >= {"key", "version"} and "data" not in body
    assert body["version"] == f"v{version}" and len(body["key"]) >= 16


def test_login_wrong_password_is_401(simulator: Simulator) -> None:
    edf = Edf(simulator, login=False)
    body = edf.call("PUT", "/login", json={"name": "admin", "password": "wrong_pw"}, expect=401)
    assert body["name"] == "AuthFailedError" and body["http"] == 401


@pytest.mark.parametrize(
    "headers", [{}, {"Auth-Token": "0" * 32}], ids=["missing-key", "wrong-key"]
)
def test_requests_without_valid_key_are_401(simulator: Simulator, headers: dict) -> None:
    r = requests.get(f"{simulator.url}/v2.2/app_instances", headers=headers, timeout=10)
    assert r.status_code == 401
    assert r.json()["message"] == INVALID


def test_session_expires_after_ttl(simulator_factory: Callable[..., Simulator]) -> None:
    sim = simulator_factory(session_ttl=0.3)
    edf = Edf(sim)
    edf.call("GET", "/system")
    time.sleep(0.5)
    body = edf.call("GET", "/system", expect=401)
    assert body["message"] == INVALID
    edf.login()
    edf.call("GET", "/system")


def test_logout_ends_session(edf: Edf) -> None:
    edf.call("PUT", "/logout")
    edf.call("GET", "/system", expect=401)


def test_sim_expire_sessions(edf: Edf) -> None:
    assert edf.sim.state()["sessions"] == 1
    headers = {"Sim-Token": edf.sim.control_token}
    r = requests.post(f"{edf.sim.url}/_sim/sessions/expire", headers=headers, timeout=10)
    assert r.status_code == 200
    assert edf.call("GET", "/system", expect=401)["message"] == INVALID
    assert edf.sim.state()["sessions"] == 0


# ---- system, api ---------------------------------------------------------------------------


def test_system_reports_version_and_capacity(edf: Edf) -> None:
    body = edf.call("GET", "/system")
    assert body["version"] == "v2.2" and body["path"] == "/system"
    system = body["data"]
    assert system["sw_version"] == "3.2.5.0"
    assert system["total_capacity"] == 100 * units.Gi == system["available_capacity"]
    edf.create_ai("capacity-user", size=3)
    assert edf.call("GET", "/system")["data"]["available_capacity"] == 97 * units.Gi


def test_api_schema_is_the_real_capture_on_v21(simulator: Simulator) -> None:
    capture = Path(datera_glance.__file__).parent / "simulator" / "data" / "api_21.json"
    r = requests.get(f"{simulator.url}/v2.1/api", timeout=30)
    assert r.status_code == 200
    body = r.json()
    assert body["version"] == "v2.1"
    assert len([k for k in body if k.startswith("/")]) == 110
    login = body["/login"]["update"]["bodyParamSchema"]
    assert login["required"] == ["name", "password"]
    # The packaged copy is a real capture of a v2.1 cluster's GET /api.
    assert body == json.loads(capture.read_text())


def test_api_versions_endpoint(simulator_factory: Callable[..., Simulator]) -> None:
    sim = simulator_factory(api_versions=("2.1",))
    r = requests.get(f"{sim.url}/api_versions", timeout=10)
    assert r.json() == {"api_versions": ["v2.1"]}
    r = requests.put(
        f"{sim.url}/v2.2/login", json={"name": "admin", "password": "password"}, timeout=10
    )
    assert r.status_code == 404
    Edf(sim, version="2.1").call("GET", "/system")


# ---- app instances -----------------------------------------------------------------------


def test_create_app_instance_shape(edf: Edf) -> None:
    uuid = "0f0f0f0f-0000-1111-2222-333344445555"
    body = edf.create_ai("OS-IMAGE-" + uuid, size=2, uuid=uuid)
    assert body["path"] == "/app_instances" and body["tenant"] == "/root"
    ai = body["data"]
    assert ai["name"] == "OS-IMAGE-" + uuid and ai["uuid"] == uuid
    assert ai["path"] == f"/app_instances/{ai['id']}" and ai["tenant"] == "/root"
    assert ai["admin_state"] == "online" and ai["create_mode"] == "openstack"
    si = ai["storage_instances"][0]
    assert si["name"] == "storage-1" and si["op_state"] == "available"
    assert si["path"] == f"/app_instances/{ai['id']}/storage_instances/storage-1"
    assert si["access"]["iqn"].startswith("iqn.2013-05.com.daterainc:")
    assert si["access"]["ips"]
    assert si["acl_policy"] == {
        "path": si["path"] + "/acl_policy",
        "initiators": [],
        "initiator_groups": [],
    }
    assert si["auth"]["type"] == "none" and si["auth"]["target_pswd"] == "(hidden)"
    vol = _volume(ai)
    assert vol["name"] == "volume-1" and vol["size"] == 2 and vol["replica_count"] == 3
    assert vol["path"] == si["path"] + "/volumes/volume-1"
    # File backend: the device is the sparse volume file itself, of the right size.
    device = si["access"]["device_path"]
    assert Path(device).stat().st_size == 2 * units.Gi
    assert Path(device).stat().st_blocks == 0


def test_shape_matches_the_capture(edf: Edf) -> None:
    """Every key the real v2.1 listing shows is there (plus simulator extras)."""
    import json
    from importlib import resources

    capture = json.loads(
        resources.files("datera_glance.simulator.data").joinpath("ai_list_21.json").read_text()
    )
    real_ai = capture["data"][0]
    edf.create_ai("shape-check")
    listing = edf.call("GET", "/app_instances")
    ai = listing["data"][0]
    assert set(real_ai) <= set(ai)
    assert set(real_ai["storage_instances"][0]) <= set(ai["storage_instances"][0])
    assert set(_volume(real_ai)) <= set(_volume(ai))
    assert set(capture) <= set(listing)


def test_get_by_id_and_by_name(edf: Edf) -> None:
    ai = edf.create_ai("by-name-ai")["data"]
    assert edf.call("GET", f"/app_instances/{ai['id']}")["data"]["id"] == ai["id"]
    assert edf.call("GET", "/app_instances/by-name-ai")["data"]["id"] == ai["id"]
    body = edf.call("GET", "/app_instances/nope-ai", expect=404)
    assert body["name"] == "NotFoundError" and body["message"]


def test_duplicate_name_is_409(edf: Edf) -> None:
    edf.create_ai("dup-ai")
    assert edf.create_ai("dup-ai", expect=409)["name"] == "ConflictError"


def test_offline_online_and_device_path(edf: Edf) -> None:
    ai = edf.create_ai("onoff-ai")["data"]
    path = f"/app_instances/{ai['id']}"
    off = edf.call("PUT", path, json={"admin_state": "offline", "force": True})["data"]
    si = off["storage_instances"][0]
    assert off["admin_state"] == "offline" and si["op_state"] == "unavailable"
    assert "device_path" not in si["access"]
    assert edf.sim.state()["app_instances"][0]["device_path"] is None
    on = edf.call("PUT", path, json={"admin_state": "online"})["data"]
    si = on["storage_instances"][0]
    assert si["op_state"] == "available"
    assert si["access"]["device_path"] == edf.sim.state()["app_instances"][0]["file"]


def test_available_delay(simulator_factory: Callable[..., Simulator]) -> None:
    sim = simulator_factory(available_delay=0.3)
    edf = Edf(sim)
    ai = edf.create_ai("slow-ai")["data"]
    assert ai["storage_instances"][0]["op_state"] == "unavailable"
    time.sleep(0.4)
    si = edf.call("GET", f"/app_instances/{ai['id']}/storage_instances/storage-1")["data"]
    assert si["op_state"] == "available"


def test_delete_online_needs_force(edf: Edf) -> None:
    ai = edf.create_ai("del-ai")["data"]
    file = Path(edf.sim.state()["app_instances"][0]["file"])
    body = edf.call("DELETE", f"/app_instances/{ai['id']}", expect=400)
    assert body["name"] == "InvalidRequestError" and "online" in body["message"]
    assert file.exists()
    edf.call("DELETE", f"/app_instances/{ai['id']}", json={"force": True})
    assert not file.exists()
    edf.call("GET", f"/app_instances/{ai['id']}", expect=404)
    edf.call("DELETE", f"/app_instances/{ai['id']}", json={"force": True}, expect=404)


def test_delete_offline_without_force(edf: Edf) -> None:
    ai = edf.create_ai("del2-ai")["data"]
    edf.call("PUT", f"/app_instances/{ai['id']}", json={"admin_state": "offline"})
    edf.call("DELETE", f"/app_instances/{ai['id']}")
    assert edf.sim.state()["app_instances"] == []


def test_resize_refused_online_and_works_offline(edf: Edf) -> None:
    ai = edf.create_ai("resize-ai")["data"]
    vol_path = f"/app_instances/{ai['id']}/storage_instances/storage-1/volumes/volume-1"
    device = ai["storage_instances"][0]["access"]["device_path"]
    with open(device, "r+b") as f:
        f.write(b"keep me" * 1000)
    body = edf.call("PUT", vol_path, json={"size": 2}, expect=400)
    assert "online" in body["message"]
    edf.call("PUT", f"/app_instances/{ai['id']}", json={"admin_state": "offline", "force": True})
    vol = edf.call("PUT", vol_path, json={"size": 3})["data"]
    assert vol["size"] == 3
    file = Path(edf.sim.state()["app_instances"][0]["file"])
    assert file.stat().st_size == 3 * units.Gi
    with open(file, "rb") as f:
        assert f.read(7000) == b"keep me" * 1000
        f.seek(2 * units.Gi)
        assert f.read(4096) == bytes(4096)
    assert edf.call("PUT", vol_path, json={"size": 1}, expect=400)["name"] == (
        "InvalidRequestError"
    )


def test_capacity_exhaustion_is_422(simulator_factory: Callable[..., Simulator]) -> None:
    sim = simulator_factory(capacity_bytes=4 * units.Gi)
    edf = Edf(sim)
    body = edf.create_ai("too-big", size=5, expect=422)
    assert body["name"] == "InsufficientCapacityError" and body["http"] == 422
    ai = edf.create_ai("fits", size=3)["data"]
    edf.call("PUT", f"/app_instances/{ai['id']}", json={"admin_state": "offline"})
    vol_path = f"/app_instances/{ai['id']}/storage_instances/storage-1/volumes/volume-1"
    assert edf.call("PUT", vol_path, json={"size": 5}, expect=422)["name"] == (
        "InsufficientCapacityError"
    )
    edf.call("PUT", vol_path, json={"size": 4})
    headers = {"Sim-Token": sim.control_token}
    body = {"bytes": 10 * units.Gi}
    r = requests.put(f"{sim.url}/_sim/capacity", json=body, headers=headers, timeout=10)
    assert r.status_code == 200 and r.json()["available"] == 6 * units.Gi
    edf.create_ai("fits-now", size=6)
    assert sim.state()["capacity"] == {
        "total": 10 * units.Gi,
        "used": 10 * units.Gi,
        "available": 0,
    }
    assert edf.create_ai("full", size=1, expect=422)["name"] == "InsufficientCapacityError"


# ---- listing: paging and filters -----------------------------------------------------------


def test_paging_v22(edf: Edf) -> None:
    for i in range(5):
        edf.create_ai(f"page-{i}")
    first = edf.call("GET", "/app_instances", params={"limit": 2})
    assert first["metadata"] == {"total_count": 5, "request_count": 2, "offset": 0, "limit": 2}
    names = [a["name"] for a in first["data"]]
    offset = 2
    while True:
        page = edf.call("GET", "/app_instances", params={"limit": 2, "offset": offset})
        names += [a["name"] for a in page["data"]]
        offset += page["metadata"]["limit"]
        if offset >= page["metadata"]["total_count"]:
            break
    assert names == [f"page-{i}" for i in range(5)]
    assert edf.call("GET", "/app_instances")["metadata"]["limit"] == 100
    edf.call("GET", "/app_instances", params={"limit": 1001}, expect=422)
    edf.call("GET", "/app_instances", params={"offset": "x"}, expect=422)


def test_listing_v21_metadata_total(simulator: Simulator) -> None:
    edf = Edf(simulator, version="2.1")
    for i in range(3):
        edf.create_ai(f"v21-{i}")
    body = edf.call("GET", "/app_instances")
    assert body["metadata"] == {"total": 3} and body["version"] == "v2.1"
    assert len(body["data"]) == 3


def test_filters(edf: Edf) -> None:
    for name in ("OS-IMAGE-aaa111", "OS-IMAGE-bbb222", "other-ccc333"):
        edf.create_ai(name)

    def names(flt: str) -> list[str]:
        return [
            a["name"] for a in edf.call("GET", "/app_instances", params={"filter": flt})["data"]
        ]

    assert names("match(name,.*bbb222.*)") == ["OS-IMAGE-bbb222"]
    assert names("match(name,^OS-IMAGE-)") == ["OS-IMAGE-aaa111", "OS-IMAGE-bbb222"]
    assert names("name=other-ccc333") == ["other-ccc333"]
    assert names("name=other") == []
    meta = edf.call("GET", "/app_instances", params={"filter": "match(name,OS-)", "limit": 1})
    assert meta["metadata"]["total_count"] == 2 and meta["metadata"]["request_count"] == 1
    edf.call("GET", "/app_instances", params={"filter": "bogus(name)"}, expect=400)


# ---- schema validation ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"create_mode": "openstack"}, "'name' is a required property"),
        ({"name": "1-starts-with-digit"}, "name:"),
        ({"name": "ok-name", "colour": "blue"}, "'colour' was unexpected"),
        ({"name": "ok-name", "create_mode": "cinder"}, "create_mode"),
        (
            {
                "name": "ok-name",
                "storage_instances": [
                    {"name": "storage-1", "volumes": [{"name": "volume-1", "size": 0}]}
                ],
            },
            "storage_instances.0.volumes.0.size",
        ),
    ],
    ids=["missing-name", "bad-pattern", "unknown-field", "bad-enum", "size-below-minimum"],
)
def test_schema_rejects_bad_bodies(edf: Edf, body: dict, fragment: str) -> None:
    err = edf.call("POST", "/app_instances", json=body, expect=422)
    assert set(err) >= {"name", "code", "http", "message", "errors"}
    assert err["name"] == "ValidationFailedError" and err["http"] == 422
    assert any(fragment in e for e in err["errors"]), err["errors"]
    assert edf.sim.state()["app_instances"] == []


def test_schema_on_updates_and_login(edf: Edf) -> None:
    ai = edf.create_ai("schema-upd")["data"]
    err = edf.call("PUT", f"/app_instances/{ai['id']}", json={"admin_state": "sleepy"}, expect=422)
    assert "admin_state" in err["errors"][0]
    err = edf.call("PUT", f"/app_instances/{ai['id']}", json={"force": "yes"}, expect=422)
    assert "force" in err["errors"][0]
    err = edf.call("PUT", "/login", json={"name": "a b", "password": "password"}, expect=422)
    assert err["name"] == "ValidationFailedError"
    err = edf.call("PUT", "/login", json={"name": "admin"}, expect=422)
    assert any("password" in e for e in err["errors"])


def test_bad_json_is_400(edf: Edf) -> None:
    r = edf.session.post(
        edf.url("/app_instances"),
        data=b"{not json",
        timeout=10,
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 400 and r.json()["name"] == "InvalidRequestError"


def test_unknown_route_and_method(edf: Edf) -> None:
    assert edf.call("GET", "/no_such_thing", expect=404)["name"] == "InvalidRouteError"
    assert edf.call("POST", "/system", expect=405)["http"] == 405


def test_form_encoded_login(simulator: Simulator) -> None:
    """The Go SDK logs in with a form-encoded body."""
    r = requests.put(
        f"{simulator.url}/v2.2/login", data={"name": "admin", "password": "password"}, timeout=10
    )
    assert r.status_code == 200 and r.json()["key"]


def test_api_v22_has_the_22_deltas(simulator: Simulator) -> None:
    v21 = requests.get(f"{simulator.url}/v2.1/api", timeout=30).json()
    v22 = requests.get(f"{simulator.url}/v2.2/api", timeout=30).json()
    assert "force" not in v21["/initiators"]["create"]["bodyParamSchema"]["properties"]
    assert "force" in v22["/initiators"]["create"]["bodyParamSchema"]["properties"]
    assert v22["version"] == "v2.2"


def test_storage_instance_and_volume_endpoints(edf: Edf) -> None:
    ai = edf.create_ai("sub-ai", size=1.5)["data"]
    base = f"/app_instances/{ai['name']}/storage_instances"
    sis = edf.call("GET", base)
    assert [s["name"] for s in sis["data"]] == ["storage-1"] and sis["metadata"]["total_count"] == 1
    vols = edf.call("GET", f"{base}/storage-1/volumes")["data"]
    assert vols[0]["size"] == 1.5 and vols[0]["name"] == "volume-1"
    assert edf.call("GET", f"{base}/storage-1/volumes/volume-1")["data"] == vols[0]
    assert Path(vols[0]["device_path"]).stat().st_size == int(1.5 * units.Gi)
    edf.call("GET", f"{base}/storage-9", expect=404)
    edf.call("GET", f"{base}/storage-1/volumes/volume-9", expect=404)
    updated = edf.call(
        "PUT",
        f"{base}/storage-1/volumes/volume-1",
        json={"replica_count": 2, "placement_mode": "all_flash"},
    )["data"]
    assert updated["replica_count"] == 2 and updated["placement_mode"] == "all_flash"


def test_sort_and_rename(edf: Edf) -> None:
    for name in ("zeta-ai", "alpha-ai", "mid-ai"):
        edf.create_ai(name)
    listed = edf.call("GET", "/app_instances", params={"sort": "name"})["data"]
    assert [a["name"] for a in listed] == ["alpha-ai", "mid-ai", "zeta-ai"]
    renamed = edf.call("PUT", "/app_instances/mid-ai", json={"name": "renamed-ai"})["data"]
    assert renamed["name"] == "renamed-ai"
    edf.call("PUT", "/app_instances/renamed-ai", json={"name": "zeta-ai"}, expect=409)
