"""Retries, backoff, deadline and Retry-After, with a fake clock: no test sleeps for real."""

from __future__ import annotations

import pytest
import requests

from datera_glance.edf import errors
from tests.plugins.edf_fakes import (
    Call,
    FakeClock,
    FakeResponse,
    FakeSession,
    ai_json,
    edf_error,
    make_client,
    ok,
)

SYSTEM = "/v2.2/system"
UNAVAILABLE = edf_error(503, "NotConnectedError", "cluster busy")
INITIALIZING = edf_error(500, "InternalError", "REST server is still initializing")


def _system_calls(fake: FakeSession) -> list[Call]:
    return [c for c in fake.calls if c.path == SYSTEM]


@pytest.mark.parametrize(
    ("random", "expected"),
    [(0.0, [0.25, 0.5, 1.0, 2.0]), (1.0, [0.5, 1.0, 2.0, 4.0]), (0.5, [0.375, 0.75, 1.5, 3.0])],
)
def test_503_backoff_is_exponential_with_jitter(random: float, expected: list[float]) -> None:
    fake = FakeSession().on("GET", SYSTEM, *[UNAVAILABLE] * 4, ok({"name": "c1"}))
    clock = FakeClock()
    assert make_client(fake, clock=clock, random=random).system().name == "c1"
    assert clock.sleeps == pytest.approx(expected)
    assert len(_system_calls(fake)) == 5


def test_backoff_is_capped() -> None:
    fake = FakeSession().on("GET", SYSTEM, *[UNAVAILABLE] * 12, ok({}))
    clock = FakeClock()
    make_client(fake, clock=clock, random=1.0, retry_deadline=1000).system()
    assert max(clock.sleeps) == pytest.approx(15.0)
    assert clock.sleeps[-1] == pytest.approx(15.0)


def test_503_until_deadline_is_service_unavailable() -> None:
    fake = FakeSession().on("GET", SYSTEM, UNAVAILABLE)
    clock = FakeClock()
    with pytest.raises(errors.ServiceUnavailable) as info:
        make_client(fake, clock=clock, retry_deadline=30).system()
    err = info.value
    assert (err.status, err.name, err.method, err.path) == (
        503,
        "NotConnectedError",
        "GET",
        "/v2.2/system",
    )
    assert "cluster busy" in err.message
    assert sum(clock.sleeps) == pytest.approx(30.0)  # used the whole deadline, not more
    assert len(_system_calls(fake)) == len(clock.sleeps) + 1


def test_still_initializing_500_is_retried() -> None:
    fake = FakeSession().on("GET", SYSTEM, INITIALIZING, INITIALIZING, ok({"name": "up"}))
    clock = FakeClock()
    assert make_client(fake, clock=clock).system().name == "up"
    assert len(clock.sleeps) == 2


def test_still_initializing_until_deadline_is_service_unavailable() -> None:
    fake = FakeSession().on("GET", SYSTEM, INITIALIZING)
    with pytest.raises(errors.ServiceUnavailable) as info:
        make_client(fake, retry_deadline=5).system()
    assert info.value.status == 500


def test_other_500_is_not_retried() -> None:
    fake = FakeSession().on("GET", SYSTEM, edf_error(500, "DatabaseError", "db broke"))
    clock = FakeClock()
    with pytest.raises(errors.InternalError):
        make_client(fake, clock=clock).system()
    assert clock.sleeps == []


@pytest.mark.parametrize("status", [400, 401, 403, 404, 405, 409, 422])
def test_client_errors_are_not_retried(status: int) -> None:
    fake = FakeSession().on("POST", "/v2.2/app_instances", edf_error(status, "SomeError", "no"))
    clock = FakeClock()
    with pytest.raises(errors.EdfError):
        make_client(fake, clock=clock).create_app_instance("OS-IMAGE-1", uuid="u", size_gib=1)
    assert clock.sleeps == []


def test_retry_after_seconds_is_honoured() -> None:
    busy = edf_error(503, "NotConnectedError", "busy", **{"Retry-After": "7"})
    fake = FakeSession().on("GET", SYSTEM, busy, ok({}))
    clock = FakeClock()
    make_client(fake, clock=clock).system()
    assert clock.sleeps == [7.0]


def test_retry_after_http_date_is_honoured() -> None:
    # make_client's wall clock is 1_700_000_000 = Tue, 14 Nov 2023 22:13:20 GMT
    busy = edf_error(
        503, "NotConnectedError", "busy", **{"Retry-After": "Tue, 14 Nov 2023 22:13:32 GMT"}
    )
    fake = FakeSession().on("GET", SYSTEM, busy, ok({}))
    clock = FakeClock()
    make_client(fake, clock=clock).system()
    assert clock.sleeps == [pytest.approx(12.0)]


def test_retry_after_beyond_deadline_gives_up_at_once() -> None:
    busy = edf_error(503, "NotConnectedError", "busy", **{"Retry-After": "600"})
    fake = FakeSession().on("GET", SYSTEM, busy, ok({}))
    clock = FakeClock()
    with pytest.raises(errors.ServiceUnavailable):
        make_client(fake, clock=clock, retry_deadline=60).system()
    assert clock.sleeps == []


@pytest.mark.parametrize(
    "exc",
    [
        requests.exceptions.ConnectionError("refused"),
        requests.exceptions.ConnectTimeout("connect timed out"),
        requests.exceptions.ReadTimeout("read timed out"),
    ],
    ids=["refused", "connect-timeout", "read-timeout"],
)
def test_connection_errors_are_retried(exc: Exception) -> None:
    fake = FakeSession().on("GET", SYSTEM, exc, exc, ok({"name": "back"}))
    clock = FakeClock()
    assert make_client(fake, clock=clock).system().name == "back"
    assert len(clock.sleeps) == 2


def test_connection_errors_until_deadline_are_connection_failed() -> None:
    fake = FakeSession().on("GET", SYSTEM, requests.exceptions.ConnectionError("refused"))
    clock = FakeClock()
    with pytest.raises(errors.ConnectionFailed) as info:
        make_client(fake, clock=clock, retry_deadline=20).system()
    assert info.value.status is None
    assert info.value.path == "/v2.2/system"
    assert "refused" in info.value.message
    assert sum(clock.sleeps) == pytest.approx(20.0)


def test_login_is_retried_too() -> None:
    fake = FakeSession().on("GET", SYSTEM, ok({}))
    fake.on("PUT", "/v2.2/login", UNAVAILABLE, FakeResponse(200, {"key": "k"}))
    clock = FakeClock()
    make_client(fake, clock=clock).system()
    assert len(clock.sleeps) == 1


def test_tls_error_is_not_retried() -> None:
    fake = FakeSession().on("PUT", "/v2.2/login", requests.exceptions.SSLError("bad cert"))
    clock = FakeClock()
    with pytest.raises(errors.ConnectionFailed, match="TLS"):
        make_client(fake, clock=clock).system()
    assert clock.sleeps == []
    assert len(fake.calls) == 1


def test_body_is_sent_unchanged_on_every_attempt() -> None:
    fake = FakeSession().on("POST", "/v2.2/app_instances", UNAVAILABLE, UNAVAILABLE, ok(ai_json()))
    make_client(fake).create_app_instance("OS-IMAGE-1", uuid="u", size_gib=2)
    bodies = [c.body for c in fake.api_calls()]
    assert len(bodies) == 3 and bodies[0] == bodies[1] == bodies[2]


# -- a POST or DELETE whose response was lost --------------------------------------------------

UUID = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"


def test_post_conflict_after_lost_response_finds_our_object() -> None:
    fake = FakeSession()
    lost = requests.exceptions.ConnectionError("connection reset")
    fake.on("POST", "/v2.2/app_instances", lost, edf_error(409, "ConflictError", "exists"))
    fake.on("GET", "/v2.2/app_instances", ok([ai_json("OS-IMAGE-1", uuid=UUID)], metadata={}))
    ai = make_client(fake).create_app_instance("OS-IMAGE-1", uuid=UUID, size_gib=1)
    assert ai.name == "OS-IMAGE-1" and ai.uuid == UUID
    lookup = fake.api_calls()[-1]
    assert (lookup.method, lookup.params["filter"]) == ("GET", "name=OS-IMAGE-1")


def test_post_conflict_after_lost_response_with_other_uuid_is_conflict() -> None:
    fake = FakeSession()
    lost = requests.exceptions.ConnectionError("connection reset")
    fake.on("POST", "/v2.2/app_instances", lost, edf_error(409, "ConflictError", "exists"))
    fake.on("GET", "/v2.2/app_instances", ok([ai_json("OS-IMAGE-1", uuid="other")], metadata={}))
    with pytest.raises(errors.Conflict):
        make_client(fake).create_app_instance("OS-IMAGE-1", uuid=UUID, size_gib=1)


def test_plain_post_conflict_is_conflict_without_lookup() -> None:
    fake = FakeSession().on("POST", "/v2.2/app_instances", edf_error(409, "ConflictError", "dup"))
    with pytest.raises(errors.Conflict):
        make_client(fake).create_app_instance("OS-IMAGE-1", uuid=UUID, size_gib=1)
    assert [c.method for c in fake.api_calls()] == ["POST"]


def test_initiator_post_conflict_after_lost_response() -> None:
    iqn = "iqn.1993-08.org.debian:01:abcdef"
    entity = {"id": iqn, "name": "h", "path": f"/initiators/{iqn}", "tenant": "/root"}
    fake = FakeSession()
    fake.on("GET", f"/v2.2/initiators/{iqn}", edf_error(404, "NotFoundError", "no"), ok(entity))
    lost = requests.exceptions.ConnectionError("connection reset")
    fake.on("POST", "/v2.2/initiators", lost, edf_error(409, "ConflictError", "exists"))
    assert make_client(fake).ensure_initiator(iqn, "h").path == f"/initiators/{iqn}"


def test_delete_404_after_lost_response_is_success() -> None:
    fake = FakeSession()
    lost = requests.exceptions.ReadTimeout("read timed out")
    fake.on("DELETE", "/v2.2/app_instances/x", lost, edf_error(404, "NotFoundError", "gone"))
    make_client(fake).delete_app_instance("x")
    assert len(fake.api_calls()) == 2


def test_relogin_then_retry_still_one_deadline_each() -> None:
    expired = edf_error(401, "InvalidSessionKeyError", "expired")
    fake = FakeSession().on("GET", SYSTEM, expired, UNAVAILABLE, ok({"name": "ok"}))
    clock = FakeClock()
    assert make_client(fake, clock=clock).system().name == "ok"
    tokens = [c.headers["Auth-Token"] for c in _system_calls(fake)]
    assert tokens == ["tok-1", "tok-2", "tok-2"]
    assert len(clock.sleeps) == 1


def test_retry_after_zero_still_backs_off() -> None:
    busy = edf_error(503, "NotConnectedError", "busy", **{"Retry-After": "0"})
    fake = FakeSession().on("GET", SYSTEM, busy, busy, ok({}))
    clock = FakeClock()
    make_client(fake, clock=clock, random=0.0).system()
    assert clock.sleeps == [0.25, 0.5]  # never a tight loop
