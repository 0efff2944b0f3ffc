"""Simulator: tenants, initiators, ACLs, CHAP and metadata over real HTTP."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from datera_glance.simulator import Simulator
from tests.plugins.simulator import Edf

IQN = "iqn.1993-08.org.debian:01:abcdef123456"


# ---- tenants -------------------------------------------------------------------------------


def test_tenants_and_isolation(edf: Edf) -> None:
    edf.call("GET", "/tenants/root/tenant_a", expect=404)
    t = edf.call("POST", "/tenants", json={"name": "tenant_a", "parent_path": "/root"})["data"]
    assert t["name"] == "tenant_a" and t["parent_path"] == "/root"
    assert edf.call("GET", "/tenants/root/tenant_a")["data"]["name"] == "tenant_a"
    edf.call("POST", "/tenants", json={"name": "tenant_a"}, expect=409)
    edf.call("POST", "/tenants", json={"name": "tenant_b", "parent_path": "/root/tenant_a"})
    edf.call("GET", "/tenants/root/tenant_a/tenant_b")
    edf.call("POST", "/tenants", json={"name": "tenant_c", "parent_path": "/root/zz"}, expect=404)

    in_a = Edf(edf.sim, tenant="/root/tenant_a")
    in_b = Edf(edf.sim, tenant="/root/tenant_a/tenant_b")
    ai = in_a.create_ai("tenant-a-ai")["data"]
    assert ai["tenant"] == "/root/tenant_a"
    assert in_a.call("GET", f"/app_instances/{ai['id']}")["tenant"] == "/root/tenant_a"
    # Other tenants see nothing of it, by id, by name or in lists.
    for other in (edf, in_b):
        other.call("GET", f"/app_instances/{ai['id']}", expect=404)
        other.call("GET", "/app_instances/tenant-a-ai", expect=404)
        assert other.call("GET", "/app_instances")["data"] == []
        other.call("DELETE", f"/app_instances/{ai['id']}", json={"force": True}, expect=404)
    # The same name may exist once per tenant.
    edf.create_ai("tenant-a-ai")
    Edf(edf.sim, tenant="/root/nope", login=True).call("GET", "/app_instances", expect=404)
    # A tenant is seen from itself and its ancestors, not from its children.
    in_b.call("GET", "/tenants/root/tenant_a", expect=404)
    assert [x["name"] for x in edf.call("GET", "/tenants")["data"]] == [
        "root",
        "tenant_a",
        "tenant_b",
    ]
    # Only empty tenants can go.
    edf.call("DELETE", "/tenants/root/tenant_a", expect=409)
    edf.call("DELETE", "/tenants/root/tenant_a/tenant_b")


# ---- initiators ----------------------------------------------------------------------------


def test_initiator_create_get_conflict(edf: Edf) -> None:
    edf.call("GET", f"/initiators/{IQN}", expect=404)
    init = edf.call("POST", "/initiators", json={"id": IQN, "name": "host-one"})["data"]
    assert init == {"path": f"/initiators/{IQN}", "id": IQN, "name": "host-one", "tenant": "/root"}
    assert edf.call("GET", f"/initiators/{IQN}")["data"] == init
    body = edf.call("POST", "/initiators", json={"id": IQN, "name": "host-one"}, expect=409)
    assert body["name"] == "ConflictError"
    bad = edf.call("POST", "/initiators", json={"id": "not-an-iqn", "name": "h1x"}, expect=422)
    assert "id" in bad["errors"][0]


def test_v22_sub_tenant_initiator_needs_force(edf: Edf) -> None:
    edf.call("POST", "/initiators", json={"id": IQN, "name": "root-host"})
    edf.call("POST", "/tenants", json={"name": "glance"})
    sub = Edf(edf.sim, tenant="/root/glance")
    # The parent's initiator is visible from the sub-tenant, with its own tenant field.
    assert sub.call("GET", f"/initiators/{IQN}")["data"]["tenant"] == "/root"
    body = sub.call("POST", "/initiators", json={"id": IQN, "name": "glance-host"}, expect=400)
    assert body["name"] == "InvalidRequestError" and "override this warning" in body["message"]
    created = sub.call(
        "POST", "/initiators", json={"id": IQN, "name": "glance-host", "force": True}
    )["data"]
    assert created["tenant"] == "/root/glance"
    assert sub.call("GET", f"/initiators/{IQN}")["data"]["name"] == "glance-host"
    assert edf.call("GET", f"/initiators/{IQN}")["data"]["name"] == "root-host"


def test_v21_rejects_force_on_initiators(simulator: Simulator) -> None:
    edf = Edf(simulator, version="2.1")
    body = edf.call(
        "POST", "/initiators", json={"id": IQN, "name": "host-one", "force": True}, expect=422
    )
    assert body["name"] == "ValidationFailedError" and "'force' was unexpected" in body["errors"][0]
    edf.call("POST", "/initiators", json={"id": IQN, "name": "host-one"})


# ---- ACL and CHAP --------------------------------------------------------------------------


def test_acl_policy_read_modify_write(edf: Edf) -> None:
    iqn2 = IQN + "99"
    for iqn, name in ((IQN, "host-one"), (iqn2, "host-two")):
        edf.call("POST", "/initiators", json={"id": iqn, "name": name})
    ai = edf.create_ai("acl-ai")["data"]
    acl_path = f"/app_instances/{ai['id']}/storage_instances/storage-1/acl_policy"
    acl = edf.call("GET", acl_path)["data"]
    assert acl["initiators"] == [] and acl["path"] == acl_path
    paths = [{"path": f"/initiators/{IQN}"}]
    edf.call("PUT", acl_path, json={"initiators": paths, "initiator_groups": []})
    paths.append({"path": f"/initiators/{iqn2}"})
    assert edf.call("PUT", acl_path, json={"initiators": paths})["data"]["initiators"] == paths
    assert edf.sim.state()["app_instances"][0]["acl"] == [p["path"] for p in paths]
    missing = [{"path": "/initiators/iqn.2000-01.com.example:nobody"}]
    edf.call("PUT", acl_path, json={"initiators": missing}, expect=404)
    edf.call("PUT", acl_path, json={"initiators": [{"path": 7}]}, expect=422)
    # An initiator in an ACL cannot be deleted.
    edf.call("DELETE", f"/initiators/{IQN}", expect=409)
    # Member add/remove, as DBMP does it.
    member = f"{acl_path}/initiators"
    edf.call("PUT", member, json={"op": "remove", "path": f"/initiators/{IQN}"})
    edf.call("PUT", member, json={"op": "remove", "path": f"/initiators/{IQN}"}, expect=404)
    edf.call("PUT", member, json={"op": "add", "path": f"/initiators/{IQN}"})
    edf.call("PUT", member, json={"op": "add", "path": f"/initiators/{IQN}"}, expect=409)
    # The whole SI reflects it.
    si = edf.call("GET", f"/app_instances/{ai['id']}/storage_instances/storage-1")["data"]
    assert {i["path"] for i in si["acl_policy"]["initiators"]} == {p["path"] for p in paths}


def test_chap_passwords_read_back_hidden(edf: Edf) -> None:
    ai = edf.create_ai("chap-ai")["data"]
    auth_path = f"/app_instances/{ai['id']}/storage_instances/storage-1/auth"
    body = {"type": "chap", "target_user_name": "chapuser1", "target_pswd": "s3cretPassw0rd"}
    auth = edf.call("PUT", auth_path, json=body)["data"]
    assert auth["type"] == "chap" and auth["target_user_name"] == "chapuser1"
    assert auth["target_pswd"] == "(hidden)" and auth["initiator_pswd"] == "(hidden)"
    assert edf.call("GET", auth_path)["data"] == auth
    si = edf.call("GET", f"/app_instances/{ai['id']}/storage_instances/storage-1")["data"]
    assert si["auth"] == auth
    assert "s3cretPassw0rd" not in str(edf.call("GET", "/app_instances"))
    # Schema: CHAP secrets are 12..16 characters; chap needs a user and a secret.
    edf.call("PUT", auth_path, json={"type": "chap", "target_pswd": "short"}, expect=422)
    edf.call("PUT", auth_path, json={"type": "none"})
    edf.call("PUT", auth_path, json={"type": "mchap"}, expect=400)
    # Also through the SI.
    si_path = f"/app_instances/{ai['id']}/storage_instances/storage-1"
    si = edf.call("PUT", si_path, json={"auth": body, "force": True})["data"]
    assert si["auth"]["type"] == "chap"


# ---- metadata ------------------------------------------------------------------------------


def test_metadata_merge(edf: Edf) -> None:
    ai = edf.create_ai("meta-ai")["data"]
    path = f"/app_instances/{ai['id']}/metadata"
    assert edf.call("GET", path)["data"] == {}
    edf.call("PUT", path, json={"checksum": "abc", "length": 10})
    merged = edf.call("PUT", path, json={"type": "image", "length": 11})["data"]
    assert merged == {"checksum": "abc", "length": 11, "type": "image"}
    assert edf.call("GET", path)["data"] == merged
    assert edf.sim.state()["app_instances"][0]["metadata"] == merged
    edf.call("PUT", path, json={"nested": {"a": 1}}, expect=422)


@pytest.mark.parametrize("sw_version", ["2.2.7.0", "3.2.5.0"])
def test_int_ecosystem_data_absent_before_33(
    simulator_factory: Callable[..., Simulator], sw_version: str
) -> None:
    sim = simulator_factory(sw_version=sw_version)
    edf = Edf(sim)
    assert edf.call("GET", "/system")["data"]["sw_version"] == sw_version
    ai = edf.create_ai("eco-ai")["data"]
    edf.call("GET", f"/app_instances/{ai['id']}/int_ecosystem_data", expect=404)
    edf.call("PUT", f"/app_instances/{ai['id']}/int_ecosystem_data", json={"data": {}}, expect=404)
    assert "placement_policy" not in ai["storage_instances"][0]["volumes"][0]


def test_int_ecosystem_data_on_33(simulator_factory: Callable[..., Simulator]) -> None:
    sim = simulator_factory(sw_version="3.3.0.0")
    edf = Edf(sim)
    ai = edf.create_ai("eco33-ai")["data"]
    assert ai["storage_instances"][0]["volumes"][0]["placement_policy"] == {
        "path": "/placement_policies/hybrid"
    }
    path = f"/app_instances/{ai['id']}/int_ecosystem_data"
    edf.call("PUT", path, json={"data": {"type": "image", "length": 5}})
    edf.call("PUT", path, json={"data": {"checksum": "ff"}})
    assert edf.call("GET", path)["data"] == {"type": "image", "length": 5, "checksum": "ff"}
    edf.call("PUT", path, json={"type": "image"}, expect=422)
