"""Every request body the client sends on v2.1 is valid against the real v2.1 ``/api`` schema.

The captured schema (packaged with the simulator) says e.g. ``additionalProperties: false`` on
``POST /initiators``: this is where sending ``force`` to a v2.1 cluster would be caught.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest

import datera_glance
from tests.plugins.edf_fakes import (
    Call,
    FakeResponse,
    FakeSession,
    ai_json,
    edf_error,
    make_client,
    ok,
)

PACKAGED = Path(datera_glance.__file__).parent / "simulator" / "data" / "api_21.json"
VERBS = {"GET": "read", "POST": "create", "PUT": "update", "DELETE": "delete"}


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(PACKAGED.read_text())
    return loaded


def _template(schema: dict[str, Any], path: str) -> str:
    """The schema's endpoint template (``/app_instances/:id/...``) for a concrete path."""
    for template in schema:
        if not template.startswith("/"):
            continue
        pattern = re.sub(r":[a-z_]+(\([^/]*?\$\)\))?", "[^/]+", template.split("(")[0])
        pattern = re.sub(r":[a-z_]+", "[^/]+", pattern)
        if re.fullmatch(pattern, path):
            return template
    raise AssertionError(f"no schema endpoint for {path}")


def _validate(schema: dict[str, Any], call: Call) -> None:
    path = call.path.removeprefix("/v2.1")
    if path in ("/login", "/logout"):
        template = path
    elif path.startswith("/tenants/"):
        template = next(t for t in schema if t.startswith("/tenants/:"))
    else:
        template = _template(schema, path)
    spec = schema[template][VERBS[call.method]]
    body = call.body if call.body is not None else {}
    if call.method == "GET":
        body = call.params
    # Not jsonschema.validate(): the capture has "pattern": {} on booleans, which fails the
    # metaschema check but is ignored by the server and by validation proper.
    jsonschema.Draft4Validator(spec.get("bodyParamSchema", {})).validate(body)


def test_every_v21_body_matches_schema(schema: dict[str, Any]) -> None:
    ai = ai_json(admin_state="online", op_state="available")
    base = f"/v2.1/app_instances/{ai['id']}"
    si = f"{base}/storage_instances/storage-1"
    iqn = "iqn.1993-08.org.debian:01:abcdef"
    fake = FakeSession()
    fake.on("GET", "/v2.1/system", ok({"sw_version": "3.2.5.0"}))
    fake.on("GET", "/v2.1/tenants/root/glance/sub", FakeResponse(404, {"message": "no"}))
    fake.on("POST", "/v2.1/tenants", ok({}))
    fake.on("POST", "/v2.1/app_instances", ok(ai))
    fake.on("GET", "/v2.1/app_instances", ok([ai], metadata={"total": 1}))
    fake.on("GET", base, ok(ai)).on("PUT", base, ok(ai)).on("DELETE", base, ok(ai))
    fake.on("GET", si, ok(ai["storage_instances"][0]))
    fake.on("PUT", f"{si}/volumes/volume-1", ok({"size": 3}))
    fake.on("GET", f"/v2.1/initiators/{iqn}", FakeResponse(404, {"message": "no"}))
    fake.on("POST", "/v2.1/initiators", ok({"id": iqn, "path": f"/initiators/{iqn}"}))
    other = "/initiators/iqn.1993-08.org.debian:01:other"
    fake.on("GET", f"{si}/acl_policy", ok({"initiators": [{"path": other}]}))
    fake.on("PUT", f"{si}/acl_policy", ok({}))
    fake.on("PUT", f"{si}/acl_policy/initiators", ok({}))
    fake.on("PUT", f"{si}/auth", ok({}))
    client = make_client(fake, api_version="2.1", tenant="glance/sub")
    client.system()
    client.ensure_tenant()
    client.create_app_instance("OS-IMAGE-1", uuid=ai["uuid"], size_gib=2)
    client.find_app_instance("OS-IMAGE-1")
    client.list_app_instances("OS-IMAGE-")
    client.set_online(ai["id"])
    client.wait_available(ai["id"])
    client.ensure_initiator(iqn, "glance-host")
    client.add_acl_initiator(ai["id"], f"/initiators/{iqn}")
    # a cluster without the member operation: the read-modify-write bodies
    fake.on("PUT", f"{si}/acl_policy/initiators", edf_error(405, "InvalidRouteError", "no"))
    client.add_acl_initiator(ai["id"], f"/initiators/{iqn}")
    client.set_chap(ai["id"], "chap_user", "chap-secret-12")
    client.set_offline(ai["id"])
    client.resize_volume(ai["id"], 3)
    client.delete_app_instance(ai["id"])
    client.close()
    checked = 0
    for call in fake.calls:
        _validate(schema, call)
        checked += 1
    methods = {(c.method, c.path.split("/")[2]) for c in fake.calls}
    assert ("POST", "initiators") in methods and ("PUT", "app_instances") in methods
    acl_bodies = [c.body for c in fake.calls if c.method == "PUT" and "/acl_policy" in c.path]
    assert [b.get("op") for b in acl_bodies] == ["add", "add", None]
    mine = {"path": f"/initiators/{iqn}"}
    assert acl_bodies[2] == {"initiators": [{"path": other}, mine], "initiator_groups": []}
    assert checked == len(fake.calls) >= 20


def test_schema_catches_force_on_v21_initiators(schema: dict[str, Any]) -> None:
    """The check above can fail: v2.1 rejects what upstream sent."""
    spec = schema["/initiators"]["create"]["bodyParamSchema"]
    validator = jsonschema.Draft4Validator(spec)
    body = {"id": "iqn.1993-08.org.debian:01:ab", "name": "glance-host"}
    validator.validate(body)
    with pytest.raises(jsonschema.ValidationError, match="force"):
        validator.validate({**body, "force": True})
