"""EdfClient against a scripted transport: requests, login, versions, paging, operations."""

from __future__ import annotations

import logging
import warnings
from typing import Any

import certifi
import pytest
import requests

from datera_glance import __version__, options
from datera_glance.edf import ClientConfig, EdfClient, errors, models, normalize_tenant
from datera_glance.edf.config import SYSTEM_CA, system_ca_bundle
from datera_glance.simulator import Simulator
from tests.plugins.edf_fakes import (
    PASSWORD,
    Call,
    FakeClock,
    FakeResponse,
    FakeSession,
    ai_json,
    edf_error,
    make_client,
    ok,
)

# -- configuration -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("", "/root"),
        ("root", "/root"),
        ("/root", "/root"),
        ("/root/", "/root"),
        ("glance", "/root/glance"),
        ("/root/glance", "/root/glance"),
        ("a_1/b-2", "/root/a_1/b-2"),
        ("/root/a_1/b-2/c.3", "/root/a_1/b-2/c.3"),
        ("myroot", "/root/myroot"),  # upstream mapped anything containing "root" to /root
    ],
)
def test_tenant_normalisation(given: str, expected: str) -> None:
    assert normalize_tenant(given) == expected
    assert ClientConfig(host="h", tenant=given).tenant == expected


@pytest.mark.parametrize("bad", ["a b", "/root/-x", "a//b", "caf\u00e9"])
def test_bad_tenant_rejected(bad: str) -> None:
    with pytest.raises(ValueError, match="tenant"):
        normalize_tenant(bad)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (None, "/root"),
        ("  ", "/root"),
        (" a ", "/root/a"),
        ("a", "/root/a"),
        ("a/b", "/root/a/b"),
        ("/root/a/b", "/root/a/b"),
        ("/root/a/b/", "/root/a/b"),
        ("root/a", "/root/a"),
        ("/root/root", "/root/root"),
        ("4c1f0d9e-0000-4000-8000-0123456789ab", "/root/4c1f0d9e-0000-4000-8000-0123456789ab"),
    ],
)
def test_tenant_normalisation_accepts_what_the_store_accepted(
    given: str | None, expected: str
) -> None:
    """The one normaliser takes the Store's inputs (config ``datera_tenant_id`` and the URI's
    tenant path) too; a UUID level is allowed (v2.1 schema, ``POST /tenants`` name)."""
    assert normalize_tenant(given) == expected


@pytest.mark.parametrize(
    ("bad", "level"),
    [("/root/a b", "a b"), ("x/.hidden", ".hidden"), ("a/-b/c", "-b"), ("a/b$", "b$")],
)
def test_bad_tenant_message_names_the_value_and_the_rule(bad: str, level: str) -> None:
    """EDF's tenant name rule (v2.1 schema, ``POST /tenants``: letters, digits, '_', '-', '.',
    not starting with '-' or '.'); the Store turns the ValueError into its own error, so the
    message must say what was wrong on its own."""
    with pytest.raises(ValueError) as info:
        normalize_tenant(bad)
    message = str(info.value)
    assert repr(bad) in message and repr(level) in message
    assert "letters, digits" in message


@pytest.mark.parametrize(
    ("port", "ssl", "url"),
    [
        (7718, None, "https://h:7718"),
        (7717, None, "http://h:7717"),
        (7717, True, "https://h:7717"),
        (7718, False, "http://h:7718"),
        (8443, None, "https://h:8443"),
    ],
)
def test_scheme_from_port_and_ssl(port: int, ssl: bool | None, url: str) -> None:
    assert ClientConfig(host="h", port=port, ssl=ssl).base_url == url


def test_ipv6_host_is_bracketed() -> None:
    assert ClientConfig(host="fd00::5", port=7717).base_url == "http://[fd00::5]:7717"


def test_bad_api_version_rejected() -> None:
    with pytest.raises(ValueError, match="api_version"):
        ClientConfig(host="h", api_version="3.0")
    assert ClientConfig(host="h", api_version="v2.1").api_version == "2.1"


@pytest.mark.parametrize(
    "bad",
    [{"host": ""}, {"port": 0}, {"port": 70000}, {"read_timeout": 0}, {"retry_deadline": -1}],
)
def test_bad_config_rejected(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        ClientConfig(**{"host": "h", **bad})


def test_password_not_in_repr() -> None:
    config = ClientConfig(host="h", username="admin", password=PASSWORD)
    assert PASSWORD not in repr(config)
    assert PASSWORD not in repr(make_client(FakeSession()))


# -- the one request path ------------------------------------------------------------------


def test_request_shape() -> None:
    fake = FakeSession().on("GET", "/v2.2/system", ok({"name": "c1", "sw_version": "3.2.5.0"}))
    client = make_client(fake, tenant="/root/glance", connect_timeout=3.0, read_timeout=30.0)
    assert client.system().name == "c1"
    login, call = fake.calls
    assert login.url == "https://edf.example:7718/v2.2/login"
    assert login.method == "PUT"
    assert login.body == {"name": "admin", "password": PASSWORD}
    assert "Auth-Token" not in login.headers and "tenant" not in login.headers
    assert call.url == "https://edf.example:7718/v2.2/system"
    assert call.headers["Auth-Token"] == "tok-1"
    assert call.headers["tenant"] == "/root/glance"
    assert call.headers["Datera-Driver"] == f"OpenStack-Glance-datera-glance/{__version__}"
    assert "Content-Type" not in call.headers  # no body on GET
    assert login.headers["Content-Type"].startswith("application/json")
    for c in fake.calls:
        assert c.timeout == (3.0, 30.0)
        assert c.verify is True


def test_ca_file_is_used_for_verification(tmp_path: Any) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    fake = FakeSession().on("GET", "/v2.2/system", ok({}))
    make_client(fake, ca_file=str(ca)).system()
    assert {c.verify for c in fake.calls} == {str(ca)}


def test_verification_off_warns(caplog: pytest.LogCaptureFixture) -> None:
    fake = FakeSession().on("GET", "/v2.2/system", ok({}))
    with caplog.at_level(logging.WARNING, logger="datera_glance.edf"):
        client = make_client(fake, ssl_verify=False)
    assert "verification is OFF" in caplog.text
    client.system()
    assert {c.verify for c in fake.calls} == {False}


def test_requests_leave_the_warning_filters_alone() -> None:
    """``warnings.filters`` is process-wide and changing it is not thread-safe: a request with
    verification off must not touch it (the tests silence urllib3 in pyproject.toml)."""
    fake = FakeSession().on("GET", "/v2.2/system", ok({}))
    client = make_client(fake, ssl_verify=False)
    before = list(warnings.filters)
    client.system()
    client.system()
    assert warnings.filters == before


@pytest.mark.parametrize(
    ("config", "said"),
    [
        ({"port": 7717}, "(port 7717)"),
        ({"port": 7718, "ssl": False}, "(port 7718, ssl off)"),
        ({"port": 7717, "ssl_verify": False}, "(port 7717)"),
    ],
)
def test_plain_http_warns_that_credentials_travel_in_clear(
    config: dict[str, Any], said: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Before: plain HTTP (port 7717 or ssl off) was silent although the password (login)
    and the session key (every call) cross the network readable. Now one WARNING says so."""
    with caplog.at_level(logging.WARNING, logger="datera_glance.edf"):
        make_client(FakeSession(), **config)
    (record,) = caplog.records
    assert "clear text" in record.getMessage() and said in record.getMessage()


def test_https_with_verification_does_not_warn(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="datera_glance.edf"):
        make_client(FakeSession(), port=7718)
    assert caplog.text == ""


def test_the_system_ca_bundle_is_the_systems_not_certifis() -> None:
    """``ca_file = system`` verifies against the operating system's bundle; unset, requests
    uses certifi's (which is why the option's help no longer says "system's trusted CAs")."""
    system = ClientConfig(host="edf.example", ca_file=SYSTEM_CA).verify
    assert system == system_ca_bundle() and system
    assert system != certifi.where()
    assert ClientConfig(host="edf.example").verify is True  # requests then takes certifi's
    assert options.ca_file(SYSTEM_CA) == SYSTEM_CA  # accepted as a value of the option
    help_text = str(next(o.help for o in options.get_opts() if o.name == "datera_ssl_ca_file"))
    assert "certifi" in help_text and "``system``" in help_text


def test_envelope_unwrapped_and_login_reused() -> None:
    fake = FakeSession().on("GET", "/v2.2/system", ok({"name": "c1"}))
    client = make_client(fake)
    client.system()
    client.system()
    assert [c.path for c in fake.calls] == ["/v2.2/login", "/v2.2/system", "/v2.2/system"]


# -- versions, login, logout ---------------------------------------------------------------


def test_auto_prefers_22() -> None:
    fake = FakeSession().on("GET", "/v2.2/system", ok({}))
    client = make_client(fake, api_version="auto")
    assert client.api_version == "2.2"
    client.system()
    assert [c.path for c in fake.calls] == ["/v2.2/login", "/v2.2/system"]


@pytest.mark.parametrize("status", [404, 400])
def test_auto_falls_back_to_21(status: int) -> None:
    fake = FakeSession()
    fake.on("PUT", "/v2.2/login", edf_error(status, "InvalidRouteError", "no such route"))
    fake.on("GET", "/v2.1/system", ok({"sw_version": "3.2.5.0"}))
    client = make_client(fake, api_version="auto")
    assert client.system().sw_version == "3.2.5.0"
    assert client.api_version == "2.1"
    assert [c.path for c in fake.calls] == ["/v2.2/login", "/v2.1/login", "/v2.1/system"]


def test_pinned_21_never_tries_22() -> None:
    fake = FakeSession().on("GET", "/v2.1/system", ok({}))
    client = make_client(fake, api_version="2.1")
    client.system()
    assert all(c.version == "2.1" for c in fake.calls)


def test_wrong_password_is_auth_error_without_fallback() -> None:
    fake = FakeSession()
    fake.on("PUT", "/v2.2/login", edf_error(401, "AuthFailedError", "bad credentials"))
    client = make_client(fake, api_version="auto")
    with pytest.raises(errors.AuthError) as info:
        client.system()
    assert info.value.status == 401
    assert info.value.method == "PUT"
    assert [c.path for c in fake.calls] == ["/v2.2/login"]


def test_login_without_key_is_auth_error() -> None:
    fake = FakeSession().on("PUT", "/v2.2/login", FakeResponse(200, {"version": "v2.2"}))
    with pytest.raises(errors.AuthError, match="no session key"):
        make_client(fake).system()


def test_relogin_once_on_401() -> None:
    expired = edf_error(
        401,
        "InvalidSessionKeyError",
        "The key provided with the request does not correspond to a valid session.",
    )
    fake = FakeSession().on("GET", "/v2.2/system", ok({"name": "a"}), expired, ok({"name": "b"}))
    client = make_client(fake)
    assert client.system().name == "a"
    assert client.system().name == "b"
    systems = [c for c in fake.calls if c.path.endswith("system")]
    assert [c.headers["Auth-Token"] for c in systems] == ["tok-1", "tok-1", "tok-2"]
    assert [c.path for c in fake.calls].count("/v2.2/login") == 2


def test_second_401_is_auth_error() -> None:
    fake = FakeSession().on("GET", "/v2.2/system", edf_error(401, "InvalidSessionKeyError", "x"))
    with pytest.raises(errors.AuthError) as info:
        make_client(fake).system()
    assert info.value.path == "/v2.2/system"
    assert len([c for c in fake.calls if c.path.endswith("system")]) == 2


def test_close_logs_out_once_and_leaves_injected_session_open() -> None:
    fake = FakeSession().on("GET", "/v2.2/system", ok({}))
    client = make_client(fake)
    client.system()
    client.close()
    client.close()
    logout = [c for c in fake.calls if c.path.endswith("logout")]
    assert len(logout) == 1
    assert logout[0].headers["Auth-Token"] == "tok-1"
    assert not fake.closed  # the caller owns an injected session
    with pytest.raises(errors.EdfError, match="closed"):
        client.system()


def test_close_without_login_sends_nothing() -> None:
    fake = FakeSession()
    with make_client(fake):
        pass
    assert fake.calls == []


def test_failed_logout_does_not_raise_or_retry() -> None:
    fake = FakeSession().on("GET", "/v2.2/system", ok({}))
    fake.on("PUT", "/v2.2/logout", edf_error(503, "NotConnectedError", "down"))
    clock = FakeClock()
    client = make_client(fake, clock=clock)
    client.system()
    client.close()
    assert clock.sleeps == []


# -- paging ---------------------------------------------------------------------------------


def _paged(items: list[dict[str, Any]], *, filtered_after_paging: bool = False) -> Any:
    """A v2.2 collection handler honouring offset/limit like EDF."""

    def handler(call: Call) -> FakeResponse:
        offset = int(call.params.get("offset", 0))
        limit = int(call.params.get("limit", 100))
        page = items[offset : offset + limit]
        if filtered_after_paging:  # old releases: filter applied to the page, total unfiltered
            page = [i for i in page if i["name"].startswith("OS-")]
        meta = {
            "total_count": len(items),
            "request_count": len(page),
            "offset": offset,
            "limit": limit,
        }
        return ok(page, metadata=meta)

    return handler


def _ais(n: int, prefix: str = "OS-IMAGE-") -> list[dict[str, Any]]:
    return [ai_json(f"{prefix}{i:04d}", ai_id=f"id-{prefix}{i}") for i in range(n)]


def test_v22_paging_reads_every_page() -> None:
    fake = FakeSession().on("GET", "/v2.2/app_instances", _paged(_ais(250)))
    found = make_client(fake, page_size=100).list_app_instances()
    assert len(found) == 250
    assert len({a.id for a in found}) == 250
    assert [c.params["offset"] for c in fake.api_calls()] == [0, 100, 200]
    assert {c.params["limit"] for c in fake.api_calls()} == {100}


def test_v22_paging_exact_multiple_stops() -> None:
    fake = FakeSession().on("GET", "/v2.2/app_instances", _paged(_ais(200)))
    assert len(make_client(fake, page_size=100).list_app_instances()) == 200
    assert len(fake.api_calls()) == 2


def test_v22_paging_survives_filter_after_paging() -> None:
    items = _ais(30, "OS-IMAGE-") + _ais(40, "other-") + _ais(30, "OS-X-")
    fake = FakeSession().on("GET", "/v2.2/app_instances", _paged(items, filtered_after_paging=True))
    found = make_client(fake, page_size=25).list_app_instances("OS-")
    assert len(found) == 60  # pages 1 and 2 hold none of them: keep going to total_count


def test_v22_server_ignoring_offset_does_not_loop_forever() -> None:
    page = ok(_ais(10), metadata={"total_count": 1000, "offset": 0, "limit": 10})
    fake = FakeSession().on("GET", "/v2.2/app_instances", lambda call: page)
    assert len(make_client(fake, page_size=10).list_app_instances()) == 10
    assert len(fake.api_calls()) == 2


def test_v21_lists_in_one_request() -> None:
    fake = FakeSession().on("GET", "/v2.1/app_instances", ok(_ais(3), metadata={"total": 3}))
    found = make_client(fake, api_version="2.1").list_app_instances()
    assert len(found) == 3
    (call,) = fake.api_calls()
    assert "offset" not in call.params


def test_v21_short_list_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    fake = FakeSession().on("GET", "/v2.1/app_instances", ok(_ais(3), metadata={"total": 9}))
    with caplog.at_level(logging.WARNING, logger="datera_glance.edf"):
        make_client(fake, api_version="2.1").list_app_instances()
    assert "3 of 9" in caplog.text


def test_list_by_prefix_filter_and_client_side_check() -> None:
    items = [ai_json("OS-IMAGE-a", ai_id="1"), ai_json("OS-IMAGEX", ai_id="2")]
    fake = FakeSession().on("GET", "/v2.2/app_instances", ok(items, metadata={}))
    found = make_client(fake).list_app_instances("OS-IMAGE-")
    assert [a.name for a in found] == ["OS-IMAGE-a"]
    assert fake.api_calls()[0].params["filter"] == "match(name,^OS-IMAGE-.*)"


def test_list_prefix_regex_characters_escaped() -> None:
    fake = FakeSession().on("GET", "/v2.2/app_instances", ok([], metadata={}))
    make_client(fake).list_app_instances("img.v1")
    assert fake.api_calls()[0].params["filter"] == r"match(name,^img\.v1.*)"


AI_BY_NAME = "/v2.2/app_instances/OS-IMAGE-1"


def test_lookup_is_one_get_by_name() -> None:
    """EDF addresses an app instance by id or by name (v2.1 schema, ``/app_instances/:id``
    fmthelp; the SDK's ``dat_jank.post_to_get`` GETs ``app_instances/<name>``)."""
    fake = FakeSession().on("GET", AI_BY_NAME, ok(ai_json("OS-IMAGE-1", ai_id="y")))
    found = make_client(fake).lookup_app_instance("OS-IMAGE-1")
    assert found is not None and found.id == "y"
    assert [(c.method, c.path, c.params) for c in fake.api_calls()] == [("GET", AI_BY_NAME, {})]


def test_lookup_of_an_absent_name_is_none() -> None:
    fake = FakeSession().on("GET", AI_BY_NAME, edf_error(404, "NotFoundError", "no such AI"))
    assert make_client(fake).lookup_app_instance("OS-IMAGE-1") is None
    assert len(fake.api_calls()) == 1


@pytest.mark.parametrize(
    "refusal",
    [
        edf_error(422, "ValidationFailedError", "id: must be a valid UUID"),
        edf_error(400, "InvalidRequestError", "bad id"),
    ],
    ids=["422", "400"],
)
def test_lookup_refused_as_an_id_falls_back_to_the_listing(refusal: FakeResponse) -> None:
    """The schema's ``:id`` is a UUID pattern: a cluster may refuse a name there."""
    fake = FakeSession().on("GET", AI_BY_NAME, refusal)
    fake.on("GET", "/v2.2/app_instances", ok([ai_json("OS-IMAGE-1", ai_id="y")], metadata={}))
    found = make_client(fake).lookup_app_instance("OS-IMAGE-1")
    assert found is not None and found.id == "y"
    assert fake.api_calls()[-1].params["filter"] == "name=OS-IMAGE-1"


def test_lookup_answered_by_another_app_instance_asks_the_listing() -> None:
    """A name that is some other app instance's id reaches that one: trust only the name."""
    fake = FakeSession().on("GET", AI_BY_NAME, ok(ai_json("other", ai_id="OS-IMAGE-1")))
    fake.on("GET", "/v2.2/app_instances", ok([], metadata={}))
    assert make_client(fake).lookup_app_instance("OS-IMAGE-1") is None
    assert [c.path for c in fake.api_calls()] == [AI_BY_NAME, "/v2.2/app_instances"]


def test_find_by_exact_name() -> None:
    items = [ai_json("OS-IMAGE-10", ai_id="x"), ai_json("OS-IMAGE-1", ai_id="y")]
    fake = FakeSession().on("GET", "/v2.2/app_instances", ok(items, metadata={}))
    client = make_client(fake)
    found = client.find_app_instance("OS-IMAGE-1")
    assert found is not None and found.id == "y"
    assert fake.api_calls()[0].params["filter"] == "name=OS-IMAGE-1"
    assert client.find_app_instance("OS-IMAGE-2") is None


# -- operations -----------------------------------------------------------------------------


def test_create_app_instance_body() -> None:
    fake = FakeSession().on("POST", "/v2.2/app_instances", ok(ai_json(size=5)))
    ai = make_client(fake).create_app_instance(
        "OS-IMAGE-1",
        uuid="aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
        size_gib=5,
        replica_count=2,
        placement_mode="all_flash",
    )
    assert isinstance(ai, models.AppInstance)
    assert ai.volume.size_gib == 5
    assert fake.api_calls()[0].body == {
        "name": "OS-IMAGE-1",
        "uuid": "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
        "create_mode": "openstack",
        "access_control_mode": "deny_all",
        "storage_instances": [
            {
                "name": "storage-1",
                "volumes": [
                    {
                        "name": "volume-1",
                        "size": 5,
                        "replica_count": 2,
                        "placement_mode": "all_flash",
                        "snapshot_policies": [],
                    }
                ],
            }
        ],
    }


def test_create_rejects_zero_size() -> None:
    with pytest.raises(ValueError):
        make_client(FakeSession()).create_app_instance("OS-IMAGE-1", uuid="u", size_gib=0)


def test_get_by_id_or_model() -> None:
    ai = ai_json()
    fake = FakeSession().on("GET", f"/v2.2/app_instances/{ai['id']}", ok(ai))
    client = make_client(fake)
    got = client.get_app_instance(ai["id"])
    assert client.get_app_instance(got) == got
    fake.on("GET", "/v2.2/app_instances/nope", edf_error(404, "NotFoundError", "no such AI"))
    with pytest.raises(errors.NotFound):
        client.get_app_instance("nope")


def test_online_offline_delete_resize_bodies() -> None:
    ai = ai_json()
    path = f"/v2.2/app_instances/{ai['id']}"
    vol = f"{path}/storage_instances/storage-1/volumes/volume-1"
    fake = FakeSession().on("PUT", path, ok(ai)).on("DELETE", path, ok({}))
    fake.on("PUT", vol, ok({"name": "volume-1", "size": 7, "op_state": "available"}))
    client = make_client(fake)
    client.set_online(ai["id"])
    client.set_offline(ai["id"])
    client.set_offline(ai["id"], force=False)
    assert client.resize_volume(ai["id"], 7).size_gib == 7
    client.delete_app_instance(ai["id"])
    client.delete_app_instance(ai["id"], force=False)
    assert [(c.method, c.body) for c in fake.api_calls()] == [
        ("PUT", {"admin_state": "online"}),
        ("PUT", {"admin_state": "offline", "force": True}),
        ("PUT", {"admin_state": "offline"}),
        ("PUT", {"size": 7}),
        ("DELETE", {"force": True}),
        ("DELETE", None),
    ]


def test_delete_missing_is_not_found() -> None:
    fake = FakeSession().on("DELETE", "/v2.2/app_instances/x", edf_error(404, "NotFoundError", "x"))
    with pytest.raises(errors.NotFound):
        make_client(fake).delete_app_instance("x")


@pytest.mark.parametrize(
    ("sw_version", "leaf", "put_body"),
    [
        ("3.2.5.0", "metadata", {"type": "image", "length": "5"}),
        ("2.2.7", "metadata", {"type": "image", "length": "5"}),
        ("3.3.0.0", "int_ecosystem_data", {"data": {"type": "image", "length": "5"}}),
        ("3.10.1", "int_ecosystem_data", {"data": {"type": "image", "length": "5"}}),
    ],
)
def test_metadata_path_by_product_version(sw_version: str, leaf: str, put_body: Any) -> None:
    meta = {"type": "image", "length": "5"}
    path = f"/v2.2/app_instances/x/{leaf}"
    fake = FakeSession().on("GET", "/v2.2/system", ok({"sw_version": sw_version}))
    stored = {"data": meta} if leaf == "int_ecosystem_data" else meta
    fake.on("PUT", path, ok(stored)).on("GET", path, ok(stored))
    client = make_client(fake)
    assert client.put_metadata("x", meta) == meta
    assert client.get_metadata("x") == meta
    calls = fake.api_calls()
    assert [c.path for c in calls] == ["/v2.2/system", path, path]  # /system read once
    assert calls[1].body == put_body


def test_ensure_tenant_root_does_nothing() -> None:
    fake = FakeSession()
    make_client(fake).ensure_tenant()
    assert fake.calls == []


def test_ensure_tenant_existing_is_one_get() -> None:
    fake = FakeSession().on("GET", "/v2.2/tenants/root/a/b", ok({"path": "/root/a/b"}))
    make_client(fake, tenant="/root/a/b").ensure_tenant()
    (call,) = fake.api_calls()
    assert call.headers["tenant"] == "/root"


def test_ensure_tenant_creates_every_level() -> None:
    fake = FakeSession().on("GET", "/v2.2/tenants/root/a/b/c", edf_error(404, "NotFoundError", ""))
    fake.on("POST", "/v2.2/tenants", edf_error(409, "ConflictError", "exists"), ok({}), ok({}))
    make_client(fake, tenant="a/b/c").ensure_tenant()
    posts = [c for c in fake.api_calls() if c.method == "POST"]
    assert [c.body for c in posts] == [
        {"name": "a", "parent_path": "/root"},
        {"name": "b", "parent_path": "/root/a"},
        {"name": "c", "parent_path": "/root/a/b"},
    ]
    assert {c.headers["tenant"] for c in posts} == {"/root"}


IQN = "iqn.1993-08.org.debian:01:abcdef"
INIT = f"/v2.2/initiators/{IQN}"


def _initiator(tenant: str) -> dict[str, Any]:
    return {"id": IQN, "name": "glance-host", "path": f"/initiators/{IQN}", "tenant": tenant}


def test_get_initiator_missing_is_none() -> None:
    fake = FakeSession().on("GET", INIT, edf_error(404, "NotFoundError", "no"))
    assert make_client(fake).get_initiator(IQN) is None
    assert fake.api_calls()[0].url.endswith(f"/initiators/{IQN}")  # colons raw


def test_ensure_initiator_existing_in_tenant() -> None:
    fake = FakeSession().on("GET", INIT, ok(_initiator("/root")))
    got = make_client(fake).ensure_initiator(IQN, "glance-host")
    assert got.path == f"/initiators/{IQN}"
    assert [c.method for c in fake.api_calls()] == ["GET"]


def test_ensure_initiator_new_on_22_has_no_force() -> None:
    fake = FakeSession().on("GET", INIT, edf_error(404, "NotFoundError", "no"))
    fake.on("POST", "/v2.2/initiators", ok(_initiator("/root/t")))
    make_client(fake, tenant="/root/t").ensure_initiator(IQN, "glance-host")
    assert fake.api_calls()[1].body == {"id": IQN, "name": "glance-host"}


def test_ensure_initiator_from_parent_tenant_uses_force_on_22() -> None:
    fake = FakeSession().on("GET", INIT, ok(_initiator("/root")))
    fake.on("POST", "/v2.2/initiators", ok(_initiator("/root/t")))
    got = make_client(fake, tenant="/root/t").ensure_initiator(IQN, "glance-host")
    assert got.tenant == "/root/t"
    assert fake.api_calls()[1].body == {"id": IQN, "name": "glance-host", "force": True}


def test_ensure_initiator_force_after_override_warning_on_22() -> None:
    fake = FakeSession().on("GET", INIT, edf_error(404, "NotFoundError", "no"))
    warning = edf_error(400, "InvalidRequestError", "Use force to override this warning")
    fake.on("POST", "/v2.2/initiators", warning, ok(_initiator("/root/t")))
    make_client(fake, tenant="/root/t").ensure_initiator(IQN, "glance-host")
    posts = [c.body for c in fake.api_calls() if c.method == "POST"]
    assert posts == [
        {"id": IQN, "name": "glance-host"},
        {"id": IQN, "name": "glance-host", "force": True},
    ]


def test_ensure_initiator_never_forces_on_21() -> None:
    init21 = f"/v2.1/initiators/{IQN}"
    fake = FakeSession().on("GET", init21, edf_error(404, "NotFoundError", "no"))
    warning = edf_error(400, "InvalidRequestError", "Use force to override this warning")
    fake.on("POST", "/v2.1/initiators", warning)
    client = make_client(fake, api_version="2.1", tenant="/root/t")
    with pytest.raises(errors.InvalidRequest):
        client.ensure_initiator(IQN, "glance-host")
    assert all("force" not in (c.body or {}) for c in fake.calls)


def test_ensure_initiator_on_21_keeps_one_from_other_tenant() -> None:
    fake = FakeSession().on("GET", f"/v2.1/initiators/{IQN}", ok(_initiator("/root")))
    make_client(fake, api_version="2.1", tenant="/root/t").ensure_initiator(IQN, "glance-host")
    assert [c.method for c in fake.api_calls()] == ["GET"]


def test_ensure_initiator_409_means_exists() -> None:
    fake = FakeSession().on(
        "GET", INIT, edf_error(404, "NotFoundError", "no"), ok(_initiator("/root"))
    )
    fake.on("POST", "/v2.2/initiators", edf_error(409, "ConflictError", "exists"))
    got = make_client(fake).ensure_initiator(IQN, "glance-host")
    assert got.id == IQN


ACL = "/v2.2/app_instances/x/storage_instances/storage-1/acl_policy"
MEMBERS = ACL + "/initiators"
MINE = "/initiators/mine"


def test_acl_add_uses_the_atomic_member_operation() -> None:
    fake = FakeSession().on("PUT", MEMBERS, ok({}))
    make_client(fake).add_acl_initiator("x", MINE)
    assert [(c.method, c.path, c.body) for c in fake.api_calls()] == [
        ("PUT", MEMBERS, {"op": "add", "path": MINE}),
    ]


def test_acl_add_409_means_already_present() -> None:
    fake = FakeSession().on("PUT", MEMBERS, edf_error(409, "ConflictError", f"{MINE} is there"))
    make_client(fake).add_acl_initiator("x", MINE)
    assert [(c.method, c.path) for c in fake.api_calls()] == [("PUT", MEMBERS)]


def test_acl_add_409_after_a_lost_response_is_fine() -> None:
    fake = FakeSession().on(
        "PUT",
        MEMBERS,
        requests.exceptions.ConnectionError("reset"),
        edf_error(409, "ConflictError", "already in the ACL"),
    )
    make_client(fake).add_acl_initiator("x", MINE)
    assert len(fake.api_calls()) == 2


@pytest.mark.parametrize(
    ("status", "name", "raised"),
    [
        (404, "NotFoundError", errors.NotFound),  # the app instance, or an unknown initiator
        (400, "InvalidRequestError", errors.InvalidRequest),
        (422, "ValidationFailedError", errors.ValidationFailed),
        (403, "PermissionDeniedError", errors.PermissionDenied),
    ],
)
def test_acl_add_errors_other_than_a_missing_route_are_raised(
    status: int, name: str, raised: type[errors.EdfError]
) -> None:
    fake = FakeSession().on("PUT", MEMBERS, edf_error(status, name, "refused"))
    fake.on("GET", ACL, ok({"initiators": []})).on("PUT", ACL, ok({}))
    with pytest.raises(raised):
        make_client(fake).add_acl_initiator("x", MINE)
    assert [(c.method, c.path) for c in fake.api_calls()] == [("PUT", MEMBERS)]


# A cluster without the member operation: the route is unknown (404 InvalidRouteError, the
# fake session's default for unscripted routes) or the method is not allowed on it (405).
NO_MEMBER_OP = [
    pytest.param(edf_error(405, "InvalidRouteError", "Method PUT not allowed"), id="405"),
    pytest.param(edf_error(404, "InvalidRouteError", "No route"), id="404-route"),
]


@pytest.mark.parametrize("refusal", NO_MEMBER_OP)
def test_acl_add_falls_back_to_full_lists(refusal: FakeResponse) -> None:
    current = {
        "initiators": [{"path": "/initiators/other"}],
        "initiator_groups": [{"path": "/initiator_groups/g"}],
    }
    fake = FakeSession().on("PUT", MEMBERS, refusal)
    fake.on("GET", ACL, ok(current)).on("PUT", ACL, ok({}))
    client = make_client(fake)
    assert client.get_acl("x") == ["/initiators/other"]
    client.add_acl_initiator("x", MINE)
    put = fake.api_calls()[-1]
    assert (put.method, put.path) == ("PUT", ACL)
    assert put.body == {
        "initiators": [{"path": "/initiators/other"}, {"path": MINE}],
        "initiator_groups": [{"path": "/initiator_groups/g"}],
    }
    # the cluster's answer is remembered: no more member operations
    client.add_acl_initiator("x", "/initiators/second")
    assert [c.path for c in fake.api_calls()].count(MEMBERS) == 1


def test_acl_fallback_add_present_does_not_write() -> None:
    current = {"initiators": [{"path": MINE}], "initiator_groups": []}
    fake = FakeSession().on("GET", ACL, ok(current))  # no member route
    make_client(fake).add_acl_initiator("x", MINE)
    assert [(c.method, c.path) for c in fake.api_calls()] == [("PUT", MEMBERS), ("GET", ACL)]


def test_acl_member_operation_on_the_simulator(simulator: Simulator) -> None:
    """The simulator's answers that the scripted tests above assume, end to end."""
    config = ClientConfig(
        host=simulator.host,
        port=simulator.port,
        username="admin",
        password="password",
        ssl=False,
    )
    with EdfClient(config, sleep=lambda _: None) as client:
        ai = client.create_app_instance(
            "OS-IMAGE-acl", uuid="aaaaaaaa-bbbb-cccc-dddd-000000000001", size_gib=1
        )
        a = client.ensure_initiator("iqn.2026-11.org.example:host-a", "host-a").path
        b = client.ensure_initiator("iqn.2026-11.org.example:host-b", "host-b").path
        # the answer to the first add is lost after it took effect: the retry gets 409
        simulator.add_fault("PUT", r"/acl_policy/initiators$", drop=True, after=True)
        client.add_acl_initiator(ai.id, a)
        client.add_acl_initiator(ai.id, a)  # 409: already present
        client.add_acl_initiator(ai.id, b)
        assert client.get_acl(ai.id) == [a, b]
        with pytest.raises(errors.NotFound):
            client.add_acl_initiator("OS-IMAGE-none", b)
        c = client.ensure_initiator("iqn.2026-11.org.example:host-c", "host-c").path
        simulator.add_fault("PUT", r"/acl_policy/initiators$", status=405, count=None)
        client.add_acl_initiator(ai.id, c)  # read-modify-write
        client.add_acl_initiator(ai.id, a)  # present: nothing written
        [state] = simulator.state()["app_instances"]
        assert state["acl"] == [a, b, c]
        client.delete_app_instance(ai.id)


def test_set_chap_body() -> None:
    auth = "/v2.2/app_instances/x/storage_instances/storage-1/auth"
    fake = FakeSession().on("PUT", auth, ok({"type": "chap", "target_pswd": "(hidden)"}))
    make_client(fake).set_chap("x", "chapuser", "chap-secret-12")
    assert fake.api_calls()[0].body == {
        "type": "chap",
        "target_user_name": "chapuser",
        "target_pswd": "chap-secret-12",
    }


SI = "/v2.2/app_instances/x/storage_instances/storage-1"


def _si(op_state: str) -> FakeResponse:
    return ok(ai_json(op_state=op_state)["storage_instances"][0])


def test_wait_available_polls_with_fake_clock() -> None:
    fake = FakeSession().on("GET", SI, _si("unavailable"), _si("unavailable"), _si("available"))
    clock = FakeClock()
    si = make_client(fake, clock=clock).wait_available("x", timeout=10)
    assert si.op_state == "available"
    assert clock.sleeps == [0.25, 0.5]


def test_wait_available_times_out() -> None:
    fake = FakeSession().on("GET", SI, _si("unavailable"))
    clock = FakeClock()
    with pytest.raises(errors.Timeout, match="unavailable"):
        make_client(fake, clock=clock).wait_available("x", timeout=5)
    assert sum(clock.sleeps) == pytest.approx(5)
    assert max(clock.sleeps) <= 2.0


def test_wait_available_failed_stops() -> None:
    fake = FakeSession().on("GET", SI, _si("failed"))
    with pytest.raises(errors.EdfError, match="failed"):
        make_client(fake).wait_available("x")
    assert len(fake.api_calls()) == 1


def test_threads_share_one_relogin() -> None:
    """Many threads hitting an expired session log in again once, not once each."""
    import threading

    expired = edf_error(401, "InvalidSessionKeyError", "expired")
    barrier = threading.Barrier(8)

    refused: set[str] = set()

    def system(call: Call) -> FakeResponse:
        return expired if call.headers["Auth-Token"] in refused else ok({"name": "c1"})

    fake = FakeSession().on("GET", "/v2.2/system", system)
    client = make_client(fake)
    client.system()  # logged in with tok-1 ...
    refused.add("tok-1")  # ... which then expires
    fake.calls.clear()
    failures: list[BaseException] = []

    def worker() -> None:
        barrier.wait()
        try:
            assert client.system().name == "c1"
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    assert [c.path for c in fake.calls].count("/v2.2/login") == 1


def test_no_data_error_is_an_empty_list() -> None:
    no_data = edf_error(404, "NotFoundError", "No data at /app_instances")
    fake = FakeSession().on("GET", "/v2.2/app_instances", no_data)
    client = make_client(fake)
    assert client.list_app_instances() == []
    assert client.find_app_instance("OS-IMAGE-1") is None
    fake.on("GET", "/v2.2/app_instances", edf_error(404, "NotFoundError", "other"))
    with pytest.raises(errors.NotFound):
        client.list_app_instances()
