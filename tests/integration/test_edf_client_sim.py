"""The EDF client against the real simulator over real HTTP(S): every operation, both API
versions, http and https, relogin, paging, tenants, product-version metadata, faults.
"""

from __future__ import annotations

import logging
import uuid as uuidlib
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests
from oslo_utils import units

from datera_glance.edf import ClientConfig, EdfClient, RequestCounter, errors
from datera_glance.edf.transport import RequestHook
from datera_glance.simulator import Simulator

IQN = "iqn.1993-08.org.debian:01:glancehost1"


class SpySession(requests.Session):
    """A real ``requests.Session`` that remembers what it sent."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[tuple[str, str, dict[str, Any], bytes | None]] = []

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> Any:
        self.sent.append(
            (str(method), str(url), dict(kwargs.get("params") or {}), kwargs.get("data"))
        )
        return super().request(method, url, *args, **kwargs)

    def paths(self, method: str | None = None) -> list[str]:
        return [
            url.split("/", 3)[3].split("?")[0]
            for m, url, _, _ in self.sent
            if method is None or m == method
        ]


@dataclass
class Connected:
    sim: Simulator
    client: EdfClient
    spy: SpySession


Connect = Callable[..., Connected]


@pytest.fixture
def connect() -> Iterator[Connect]:
    """``connect(sim, **config)``: a client on ``sim`` with a spying session; closed after."""
    made: list[Connected] = []

    def make(
        sim: Simulator,
        *,
        sleep: Callable[[float], None] | None = None,
        page_size: int = 500,
        on_request: RequestHook | None = None,
        **config: Any,
    ) -> Connected:
        settings: dict[str, Any] = {
            "host": sim.host,
            "port": sim.port,
            "username": "admin",
            "password": "password",
            "ssl": sim.tls,
            "ca_file": sim.ca_file,
            "retry_deadline": 30.0,
            **config,
        }
        spy = SpySession()
        extra: dict[str, Any] = {"sleep": sleep} if sleep is not None else {}
        client = EdfClient(
            ClientConfig(**settings),
            session=spy,
            page_size=page_size,
            on_request=on_request,
            **extra,
        )
        made.append(Connected(sim, client, spy))
        return made[-1]

    yield make
    for c in made:
        c.client.close()
        c.spy.close()


@pytest.fixture(
    params=[("2.1", False), ("2.1", True), ("2.2", False), ("2.2", True)],
    ids=["v2.1-http", "v2.1-https", "v2.2-http", "v2.2-https"],
)
def edf(
    request: pytest.FixtureRequest, simulator_factory: Callable[..., Simulator], connect: Connect
) -> Connected:
    version, tls = request.param
    sim = simulator_factory(tls=tls)
    return connect(sim, api_version=version)


def _image_id() -> str:
    return str(uuidlib.uuid4())


# -- every operation, on both versions and both schemes -------------------------------------


def test_every_operation(edf: Connected) -> None:
    client, sim = edf.client, edf.sim
    system = client.system()
    assert system.sw_version == "3.2.5.0"
    assert system.total_capacity == 100 * units.Gi
    client.ensure_tenant()  # /root: nothing to do

    image = _image_id()
    name = f"OS-IMAGE-{image}"
    ai = client.create_app_instance(name, uuid=image, size_gib=2, replica_count=2)
    assert (ai.name, ai.uuid, ai.tenant) == (name, image, "/root")
    assert ai.storage_instance.name == "storage-1"
    assert (ai.volume.name, ai.volume.size_gib) == ("volume-1", 2)
    assert client.system().available_capacity == 98 * units.Gi

    assert client.get_app_instance(ai.id) == ai
    assert client.get_app_instance(name).id == ai.id  # by name too
    found = client.find_app_instance(name)
    assert found is not None and found.id == ai.id
    assert client.find_app_instance(f"OS-IMAGE-{_image_id()}") is None
    assert [a.id for a in client.list_app_instances("OS-IMAGE-")] == [ai.id]
    assert client.list_app_instances("nothing-") == []

    online = client.set_online(ai)
    assert online.admin_state == "online"
    si = client.wait_available(ai.id, timeout=10)
    assert si.op_state == "available"
    assert si.iqn.startswith("iqn.") and si.ips
    assert si.device_path is not None  # the simulator's extension while online

    initiator = client.ensure_initiator(IQN, "glance-host-1")
    assert initiator.path == f"/initiators/{IQN}"
    assert client.ensure_initiator(IQN, "glance-host-1") == initiator  # idempotent
    assert client.get_initiator(IQN) == initiator
    assert client.get_initiator("iqn.1993-08.org.debian:01:nobody") is None

    assert client.get_acl(ai.id) == []
    client.add_acl_initiator(ai.id, initiator.path)
    client.add_acl_initiator(ai.id, initiator.path)
    assert client.get_acl(ai.id) == [initiator.path]
    client.set_chap(ai.id, "chap_user", "chap-secret-12")
    si = client.get_storage_instance(ai.id)
    assert si.auth_type == "chap"
    assert si.acl_initiators == (initiator.path,)
    (state,) = sim.state()["app_instances"]
    assert state["acl"] == [initiator.path]

    offline = client.set_offline(ai.id)
    assert offline.admin_state == "offline"
    volume = client.resize_volume(ai.id, 5)
    assert volume.size_gib == 5
    assert client.get_app_instance(ai.id).volume.size_gib == 5

    stored = client.put_metadata(ai.id, {"checksum": "abc", "length": 12345, "type": "image"})
    assert stored["type"] == "image"
    assert client.get_metadata(ai.id) == {"checksum": "abc", "length": 12345, "type": "image"}

    client.delete_app_instance(ai.id)
    with pytest.raises(errors.NotFound) as info:
        client.get_app_instance(ai.id)
    assert info.value.status == 404 and info.value.name == "NotFoundError"
    with pytest.raises(errors.NotFound):
        client.delete_app_instance(ai.id)
    assert sim.state()["app_instances"] == []
    assert client.system().available_capacity == 100 * units.Gi


def test_errors_from_the_server(edf: Connected) -> None:
    client, sim = edf.client, edf.sim
    image = _image_id()
    ai = client.create_app_instance(f"OS-IMAGE-{image}", uuid=image, size_gib=1)
    with pytest.raises(errors.Conflict) as conflict:
        client.create_app_instance(f"OS-IMAGE-{image}", uuid=image, size_gib=1)
    assert (conflict.value.method, conflict.value.status) == ("POST", 409)
    assert conflict.value.path == f"/v{client.api_version}/app_instances"
    with pytest.raises(errors.InvalidRequest):  # 400 or 422, per the schema
        client.create_app_instance("bad name!", uuid=image, size_gib=1)
    sim.set_capacity(3 * units.Gi)
    with pytest.raises(errors.InsufficientCapacity) as full:
        client.create_app_instance(f"OS-IMAGE-{_image_id()}", uuid=_image_id(), size_gib=5)
    assert full.value.name == "InsufficientCapacityError"
    client.set_offline(ai.id)
    with pytest.raises(errors.InsufficientCapacity):
        client.resize_volume(ai.id, 10)


# -- versions, TLS, sessions --------------------------------------------------------------


@pytest.mark.parametrize(
    ("served", "expected"), [(("2.1", "2.2"), "2.2"), (("2.1",), "2.1"), (("2.2",), "2.2")]
)
def test_auto_negotiation(
    simulator_factory: Callable[..., Simulator],
    connect: Connect,
    served: tuple[str, ...],
    expected: str,
) -> None:
    c = connect(simulator_factory(api_versions=served))
    assert c.client.api_version == expected
    c.client.system()
    assert c.spy.paths()[-1] == f"v{expected}/system"


def test_pinned_version_the_server_lacks(
    simulator_factory: Callable[..., Simulator], connect: Connect
) -> None:
    c = connect(simulator_factory(api_versions=("2.1",)), api_version="2.2")
    with pytest.raises(errors.NotFound):
        c.client.system()


def test_wrong_password(simulator: Simulator, connect: Connect) -> None:
    c = connect(simulator, password="wrong_password")
    with pytest.raises(errors.AuthError) as info:
        c.client.system()
    assert "wrong_password" not in str(info.value)


def test_https_without_verification_warns_and_works(
    simulator_factory: Callable[..., Simulator],
    connect: Connect,
    caplog: pytest.LogCaptureFixture,
) -> None:
    sim = simulator_factory(tls=True)
    with caplog.at_level(logging.WARNING, logger="datera_glance.edf"):
        c = connect(sim, ssl_verify=False, ca_file=None)
    assert "verification is OFF" in caplog.text
    before = list(warnings.filters)
    assert c.client.system().sw_version  # urllib3's InsecureRequestWarning: pyproject.toml
    assert warnings.filters == before  # process-wide and not thread-safe: not the client's


def test_https_with_the_wrong_ca_fails(
    simulator_factory: Callable[..., Simulator], connect: Connect
) -> None:
    sim = simulator_factory(tls=True)
    other = simulator_factory(tls=True)
    assert sim.ca_file != other.ca_file
    c = connect(sim, ca_file=other.ca_file, sleep=lambda s: pytest.fail("TLS errors are final"))
    with pytest.raises(errors.ConnectionFailed, match="TLS"):
        c.client.system()


def test_https_with_system_cas_fails(
    simulator_factory: Callable[..., Simulator], connect: Connect
) -> None:
    c = connect(simulator_factory(tls=True), ca_file=None)
    with pytest.raises(errors.ConnectionFailed):
        c.client.system()


def test_http_to_an_https_port_fails(
    simulator_factory: Callable[..., Simulator], connect: Connect
) -> None:
    c = connect(simulator_factory(tls=True), ssl=False, retry_deadline=0.5)
    with pytest.raises(errors.EdfError):
        c.client.system()


@pytest.mark.parametrize("version", ["2.1", "2.2"])
def test_relogin_after_sessions_expire(
    simulator_factory: Callable[..., Simulator], connect: Connect, version: str
) -> None:
    sim = simulator_factory()
    c = connect(sim, api_version=version)
    c.client.system()
    sim.expire_sessions()
    assert c.client.system().sw_version
    assert c.spy.paths("PUT").count(f"v{version}/login") == 2
    c.client.close()
    assert c.spy.paths("PUT")[-1] == f"v{version}/logout"
    assert sim.state()["sessions"] == 0


# -- paging ---------------------------------------------------------------------------------


def test_paging_across_several_pages(
    simulator_factory: Callable[..., Simulator], connect: Connect
) -> None:
    sim = simulator_factory(capacity_bytes=1000 * units.Gi)
    c22 = connect(sim, api_version="2.2", page_size=10)
    names = [f"OS-IMAGE-{i:03d}" for i in range(24)] + [f"other-{i:03d}" for i in range(17)]
    for name in names:
        c22.client.create_app_instance(name, uuid=_image_id(), size_gib=1)
    c22.spy.sent.clear()
    assert sorted(a.name for a in c22.client.list_app_instances()) == sorted(names)
    assert [p["offset"] for _, _, p, _ in c22.spy.sent] == [0, 10, 20, 30, 40]
    c22.spy.sent.clear()
    images = c22.client.list_app_instances("OS-IMAGE-")
    assert sorted(a.name for a in images) == names[:24]
    assert len(c22.spy.sent) == 3  # 24 matches, pages of 10

    c21 = connect(sim, api_version="2.1")
    assert len(c21.client.list_app_instances()) == 41
    assert len(c21.client.list_app_instances("other-")) == 17
    assert all("offset" not in p for _, _, p, _ in c21.spy.sent)


@pytest.mark.parametrize("version", ["2.1", "2.2"])
def test_lookup_by_name_is_one_request_whatever_the_tenant_holds(
    simulator_factory: Callable[..., Simulator], connect: Connect, version: str
) -> None:
    """EDF addresses an app instance by its id (the cluster's UUID, not the ``uuid`` sent at
    create: v2.1 schema, ``POST /app_instances`` has no ``id``) or by its name
    (``/app_instances/:id`` fmthelp), so an image's app instance is one GET by name away."""
    sim = simulator_factory(capacity_bytes=1000 * units.Gi)
    counter = RequestCounter()
    c = connect(sim, api_version=version, page_size=10, on_request=counter)
    images = [_image_id() for _ in range(25)]
    for image in images:
        c.client.create_app_instance(f"OS-IMAGE-{image}", uuid=image, size_gib=1)
    wanted = images[-1]
    counter.reset()
    found = c.client.lookup_app_instance(f"OS-IMAGE-{wanted}")
    assert found is not None and (found.name, found.uuid) == (f"OS-IMAGE-{wanted}", wanted)
    assert c.client.lookup_app_instance(f"OS-IMAGE-{_image_id()}") is None
    assert counter.counts == {"GET /app_instances/:ai": 2}
    with pytest.raises(errors.NotFound):  # the image id is the app instance's uuid, not its id
        c.client.get_app_instance(wanted)


# -- tenants --------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["2.1", "2.2"])
def test_tenant_isolation_and_nested_tenants(
    simulator_factory: Callable[..., Simulator], connect: Connect, version: str
) -> None:
    sim = simulator_factory()
    a = connect(sim, api_version=version, tenant="glance_a").client
    b = connect(sim, api_version=version, tenant="/root/glance_b/inner").client
    root = connect(sim, api_version=version).client
    a.ensure_tenant()
    a.ensure_tenant()  # again: nothing to create
    b.ensure_tenant()  # two levels
    image = _image_id()
    ai = a.create_app_instance(f"OS-IMAGE-{image}", uuid=image, size_gib=1)
    assert ai.tenant == "/root/glance_a"
    assert b.find_app_instance(ai.name) is None
    assert b.list_app_instances() == []
    with pytest.raises(errors.NotFound):
        b.get_app_instance(ai.id)
    other = b.create_app_instance(f"OS-IMAGE-{image}", uuid=image, size_gib=1)  # same name
    assert other.tenant == "/root/glance_b/inner"
    assert [x.id for x in a.list_app_instances()] == [ai.id]
    assert root.find_app_instance(ai.name) is None
    tenants = {s["tenant"] for s in sim.state()["app_instances"]}
    assert tenants == {"/root/glance_a", "/root/glance_b/inner"}


def test_ensure_tenant_in_a_missing_parent_is_created_level_by_level(
    simulator: Simulator, connect: Connect
) -> None:
    c = connect(simulator, api_version="2.2", tenant="/root/lvl_one/lvl_two/lvl_three")
    c.client.ensure_tenant()
    posts = [data for m, _, _, data in c.spy.sent if m == "POST"]
    assert len(posts) == 3
    image = _image_id()
    ai = c.client.create_app_instance(f"OS-IMAGE-{image}", uuid=image, size_gib=1)
    assert ai.tenant == "/root/lvl_one/lvl_two/lvl_three"


def test_initiator_tenant_rule_on_22(simulator: Simulator, connect: Connect) -> None:
    root = connect(simulator, api_version="2.2").client
    sub = connect(simulator, api_version="2.2", tenant="glance_t")
    sub.client.ensure_tenant()
    assert root.ensure_initiator(IQN, "glance-host-1").tenant == "/root"
    seen = sub.client.get_initiator(IQN)
    assert seen is not None and seen.tenant == "/root"  # the parent's, visible
    copy = sub.client.ensure_initiator(IQN, "glance-host-1")
    assert copy.tenant == "/root/glance_t"
    posts = [d or b"" for m, u, _, d in sub.spy.sent if m == "POST" and u.endswith("/initiators")]
    assert len(posts) == 1 and b'"force": true' in posts[0]
    tenants = {i["tenant"] for i in simulator.state()["initiators"]}
    assert tenants == {"/root", "/root/glance_t"}


def test_initiator_on_21_never_sends_force(simulator: Simulator, connect: Connect) -> None:
    root = connect(simulator, api_version="2.1").client
    sub = connect(simulator, api_version="2.1", tenant="glance_t")
    sub.client.ensure_tenant()
    root.ensure_initiator(IQN, "glance-host-1")
    assert sub.client.ensure_initiator(IQN, "glance-host-1").id == IQN
    sub.client.ensure_initiator("iqn.1993-08.org.debian:01:second", "glance-host-2")
    assert all(b"force" not in (d or b"") for m, _, _, d in sub.spy.sent)


# -- product version: metadata path --------------------------------------------------------


@pytest.mark.parametrize(
    ("sw_version", "leaf"),
    [("3.2.5.0", "metadata"), ("2.2.7.0", "metadata"), ("3.3.0.0", "int_ecosystem_data")],
)
def test_metadata_path_by_product_version(
    simulator_factory: Callable[..., Simulator], connect: Connect, sw_version: str, leaf: str
) -> None:
    c = connect(simulator_factory(sw_version=sw_version), api_version="2.2")
    image = _image_id()
    ai = c.client.create_app_instance(f"OS-IMAGE-{image}", uuid=image, size_gib=1)
    c.client.put_metadata(ai.id, {"type": "image", "length": 5})
    c.client.put_metadata(ai.id, {"checksum": "abc"})
    assert c.client.get_metadata(ai.id) == {"type": "image", "length": 5, "checksum": "abc"}
    used = {p.rsplit("/", 1)[1] for p in c.spy.paths() if p.startswith("v2.2/app_instances/")}
    assert used == {leaf}


@pytest.mark.parametrize(
    ("sw_version", "level", "verdict"),
    [
        ("2.2.7.0", logging.INFO, "supported"),
        ("3.3.0.0", logging.INFO, "tested, not in the version table"),
        ("4.1.0.0", logging.WARNING, "unknown to this driver"),
    ],
)
def test_first_contact_logs_the_product_version_once(
    simulator_factory: Callable[..., Simulator],
    connect: Connect,
    caplog: pytest.LogCaptureFixture,
    sw_version: str,
    level: int,
    verdict: str,
) -> None:
    c = connect(simulator_factory(sw_version=sw_version))
    with caplog.at_level(logging.INFO, logger="datera_glance.edf.client"):
        c.client.system()
        c.client.system()
    said = [r for r in caplog.records if "product version" in r.getMessage()]
    assert len(said) == 1
    assert said[0].levelno == level
    assert (
        f"product version {sw_version} ({verdict}; supported: 2.1.x, 2.2.x)" in said[0].getMessage()
    )


# -- faults over real HTTP: retries with a fake sleep -----------------------------------------


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def test_503_then_success(simulator: Simulator, connect: Connect) -> None:
    sleeps = Sleeps()
    c = connect(simulator, sleep=sleeps)
    simulator.add_fault("GET", r"^/system$", status=503, count=2)
    assert c.client.system().sw_version
    assert len(sleeps) == 2


def test_retry_after_from_the_server(simulator: Simulator, connect: Connect) -> None:
    sleeps = Sleeps()
    c = connect(simulator, sleep=sleeps)
    simulator.add_fault("GET", r"^/system$", status=503, count=1, retry_after=3)
    c.client.system()
    assert sleeps == [3.0]


def test_still_initializing(simulator: Simulator, connect: Connect) -> None:
    sleeps = Sleeps()
    c = connect(simulator, sleep=sleeps)
    simulator.add_fault(
        "PUT", r"^/login$", status=500, count=3, message="REST server is still initializing"
    )
    assert c.client.system().sw_version
    assert len(sleeps) == 3


def test_lost_create_answer_finds_the_app_instance(simulator: Simulator, connect: Connect) -> None:
    sleeps = Sleeps()
    c = connect(simulator, sleep=sleeps)
    simulator.add_fault("POST", r"^/app_instances$", drop=True, after=True)
    image = _image_id()
    ai = c.client.create_app_instance(f"OS-IMAGE-{image}", uuid=image, size_gib=1)
    assert ai.uuid == image
    assert len(simulator.state()["app_instances"]) == 1
    assert c.spy.paths("POST").count("v2.2/app_instances") == 2  # the retry got 409


def test_lost_delete_answer_is_success(simulator: Simulator, connect: Connect) -> None:
    c = connect(simulator, sleep=Sleeps())
    image = _image_id()
    ai = c.client.create_app_instance(f"OS-IMAGE-{image}", uuid=image, size_gib=1)
    simulator.add_fault("DELETE", r"^/app_instances/", drop=True, after=True)
    c.client.delete_app_instance(ai.id)
    assert simulator.state()["app_instances"] == []


def test_dropped_connections_until_deadline(simulator: Simulator, connect: Connect) -> None:
    sleeps = Sleeps()
    c = connect(simulator, sleep=sleeps, retry_deadline=0.0)
    simulator.add_fault("GET", r"^/system$", drop=True, count=None)
    with pytest.raises(errors.ConnectionFailed):
        c.client.system()


def test_wait_available_with_a_slow_cluster(
    simulator_factory: Callable[..., Simulator], connect: Connect
) -> None:
    sim = simulator_factory(available_delay=0.3)
    c = connect(sim)
    image = _image_id()
    ai = c.client.create_app_instance(f"OS-IMAGE-{image}", uuid=image, size_gib=1)
    c.client.set_online(ai.id)
    assert c.client.wait_available(ai.id, timeout=10).op_state == "available"
    c.client.set_offline(ai.id)
    with pytest.raises(errors.Timeout):
        c.client.wait_available(ai.id, timeout=0.2)
