"""The retry policy on its own, the transport with another policy, and the request hook."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from datera_glance.edf import ClientConfig, RequestCounter, RequestRecord, RetryPolicy, errors
from datera_glance.edf.transport import Route, Transport
from tests.plugins.edf_fakes import (
    FakeClock,
    FakeResponse,
    FakeSession,
    ai_json,
    edf_error,
    make_client,
    ok,
)

UNAVAILABLE = edf_error(503, "NotConnectedError", "cluster busy")
BAD_GATEWAY = edf_error(502, "BadGateway", "proxy in front of the cluster restarting")


# -- RetryPolicy ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "retried"),
    [
        (503, None, True),
        (500, {"message": "REST server is still initializing"}, True),
        (500, "REST server is still initializing", True),
        (500, {"message": "db broke"}, False),
        (502, None, False),
        (404, None, False),
        (200, None, False),
    ],
)
def test_what_is_retried(status: int, body: Any, retried: bool) -> None:
    assert RetryPolicy().retryable(status, body) is retried


@pytest.mark.parametrize(
    ("error", "retried"),
    [
        (requests.exceptions.ConnectionError("refused"), True),
        (requests.exceptions.ReadTimeout("slow"), True),
        (requests.exceptions.ConnectTimeout("slow"), True),
        (requests.exceptions.SSLError("bad cert"), False),
    ],
)
def test_which_failures_without_a_response_are_retried(error: Exception, retried: bool) -> None:
    assert RetryPolicy().retryable(error=error) is retried


def test_next_delay_is_cut_to_the_deadline_and_respects_retry_after() -> None:
    policy = RetryPolicy(random=lambda: 1.0)  # backoff 0.5, 1, 2, 4, ... capped at 15
    assert policy.next_delay(0, remaining=10.0) == 0.5
    assert policy.next_delay(3, remaining=2.5) == 2.5  # one last attempt at the deadline
    assert policy.next_delay(0, remaining=10.0, retry_after=7.0) == 7.0  # a minimum
    assert policy.next_delay(0, remaining=10.0, retry_after=11.0) is None
    assert policy.next_delay(0, remaining=0.0) is None
    assert policy.next_delay(20, remaining=100.0) == 15.0


@pytest.mark.parametrize(
    ("method", "status", "expected"),
    [("POST", 409, True), ("DELETE", 404, True), ("PUT", 409, False), ("POST", 404, False)],
)
def test_which_errors_may_be_a_lost_first_try(method: str, status: int, expected: bool) -> None:
    assert RetryPolicy.lost_response_success(method, status) is expected


class RetryBadGateway(RetryPolicy):
    """A policy that also retries 502: changing what is retried is this one function."""

    def retryable(
        self, status: int | None = None, body: Any = None, error: Exception | None = None
    ) -> bool:
        return status == 502 or super().retryable(status, body, error)


def _transport(fake: FakeSession, policy: RetryPolicy, clock: FakeClock) -> Transport:
    config = ClientConfig(host="edf.example", retry_deadline=60)
    return Transport(config, session=fake, policy=policy, sleep=clock.sleep, clock=clock)


def test_the_transport_retries_what_the_policy_says() -> None:
    fake = FakeSession().on("GET", "/v2.2/system", BAD_GATEWAY, ok({}))
    clock = FakeClock()
    reply = _transport(fake, RetryBadGateway(), clock).send(
        "GET", Route.to("system"), "2.2", headers={}
    )
    assert reply.status == 200
    assert len(fake.calls) == 2 and len(clock.sleeps) == 1

    fake = FakeSession().on("GET", "/v2.2/system", BAD_GATEWAY, ok({}))
    reply = _transport(fake, RetryPolicy(), FakeClock()).send(
        "GET", Route.to("system"), "2.2", headers={}
    )
    assert reply.status == 502 and len(fake.calls) == 1


def test_the_deadline_comes_from_the_policy() -> None:
    fake = FakeSession().on("GET", "/v2.2/system", UNAVAILABLE)
    clock = FakeClock()
    with pytest.raises(errors.ServiceUnavailable):
        _transport(fake, RetryPolicy(deadline=5.0), clock).send(
            "GET", Route.to("system"), "2.2", headers={}
        )
    assert sum(clock.sleeps) == pytest.approx(5.0)


def test_route_templates_keep_the_path_quoted() -> None:
    route = Route.to("app_instances/:ai/storage_instances/:si", ai="a%2Fb", si="storage-1")
    assert route.path == "app_instances/a%2Fb/storage_instances/storage-1"
    assert route.template == "app_instances/:ai/storage_instances/:si"
    assert Route.to("initiators/:iqn", iqn="iqn.x:y").path == "initiators/iqn.x:y"


# -- counting requests --------------------------------------------------------------------


def test_counter_counts_every_request_by_template() -> None:
    """Tests pin the number of REST calls per operation with an ``on_request`` hook."""
    ai = ai_json()
    path = f"/v2.2/app_instances/{ai['id']}"
    fake = FakeSession().on("GET", path, ok(ai)).on("PUT", path, UNAVAILABLE, ok(ai))
    fake.on("GET", f"{path}/storage_instances/storage-1", ok(ai["storage_instances"][0]))
    counter = RequestCounter()
    client = make_client(fake, on_request=counter)
    client.get_app_instance(ai["id"])
    with pytest.raises(errors.NotFound):
        client.get_app_instance("OS-IMAGE-2")  # counted all the same
    client.set_online(ai["id"])  # a 503, then the retry: two requests
    client.get_storage_instance(ai["id"])
    assert counter.counts == {
        "PUT /login": 1,
        "GET /app_instances/:ai": 2,
        "PUT /app_instances/:ai": 2,
        "GET /app_instances/:ai/storage_instances/:si": 1,
    }
    assert counter.total == 6
    counter.reset()
    client.close()
    assert counter.counts == {"PUT /logout": 1}


def test_the_hook_hears_status_and_failures() -> None:
    heard: list[RequestRecord] = []
    lost = requests.exceptions.ConnectionError("reset")
    fake = FakeSession().on("GET", "/v2.2/system", lost, FakeResponse(200, {"data": {}}))
    make_client(fake, on_request=heard.append).system()
    assert [(r.method, r.template, r.status) for r in heard] == [
        ("PUT", "login", 200),
        ("GET", "system", None),
        ("GET", "system", 200),
    ]
    assert all(r.seconds >= 0 for r in heard)


def test_a_listing_counts_one_request_per_page() -> None:
    items = [ai_json(f"OS-IMAGE-{i}", ai_id=f"id-{i}") for i in range(25)]

    def paged(call: Any) -> FakeResponse:
        offset, limit = int(call.params["offset"]), int(call.params["limit"])
        meta = {"total_count": len(items), "offset": offset, "limit": limit}
        return ok(items[offset : offset + limit], metadata=meta)

    fake = FakeSession().on("GET", "/v2.2/app_instances", paged)
    counter = RequestCounter()
    assert len(make_client(fake, page_size=10, on_request=counter).list_app_instances()) == 25
    assert counter.counts == {"PUT /login": 1, "GET /app_instances": 3}
