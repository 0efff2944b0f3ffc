"""A broken or hostile cluster: what the EDF client does with answers EDF never gives.

Each test plays one misbehaviour on the fake session (with a fake clock, so that time-outs take
no real time); tests/integration/test_edf_hostile_http.py plays the ones that need a real socket.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

import pytest

from datera_glance.cli.errors import explain
from datera_glance.edf import EdfClient, errors
from datera_glance.edf.session import DEFAULT_PAGE_SIZE, MAX_LISTED
from datera_glance.edf.transport import MAX_BODY_BYTES
from tests.plugins.edf_fakes import (
    FakeClock,
    FakeRaw,
    FakeResponse,
    FakeSession,
    ai_json,
    make_client,
    ok,
)
from tests.unit.test_edf_models import PACKAGED

# -- the size of an answer ------------------------------------------------------------------


class EndlessRaw(FakeRaw):
    """A body that never ends; counts what was read."""

    def __init__(self) -> None:
        super().__init__(b"")
        self.delivered = 0

    def read1(self, amt: int | None = None, decode_content: bool | None = None) -> bytes:
        self.reads += 1
        size = amt or 65536
        self.delivered += size
        return b" " * size


def _endless() -> FakeResponse:
    response = FakeResponse(200, None, {"Content-Type": "application/json"})
    response.raw = EndlessRaw()
    return response


def test_an_endless_body_fails_the_call_at_the_size_limit(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Before: the transport read the whole body into memory (a 2 GiB body took a worker to
    6.9 GiB). Now it stops at ``MAX_BODY_BYTES`` and the call fails, not retried."""
    response = _endless()
    fake = FakeSession().on("GET", "/v2.2/system", response)
    with caplog.at_level(logging.ERROR), pytest.raises(errors.UnexpectedResponse) as info:
        make_client(fake).system()
    raw = response.raw
    assert isinstance(raw, EndlessRaw)
    assert MAX_BODY_BYTES < raw.delivered <= MAX_BODY_BYTES + (1 << 20)
    assert response.closed
    assert "GET /v2.2/system" in str(info.value)
    assert f"{MAX_BODY_BYTES}" in str(info.value)
    assert len(fake.api_calls()) == 1  # not retried: a second try would get the same
    assert len([r for r in caplog.records if "limit" in r.getMessage()]) == 1


def test_a_declared_length_over_the_limit_fails_before_reading() -> None:
    response = FakeResponse(200, b"{}", {"Content-Length": str(MAX_BODY_BYTES + 1)})
    fake = FakeSession().on("GET", "/v2.2/system", response)
    with pytest.raises(errors.UnexpectedResponse, match="Content-Length"):
        make_client(fake).system()
    assert response.raw.reads == 0 and response.closed


def test_the_limit_holds_a_page_of_the_largest_app_instances() -> None:
    """The limit is measured, not guessed: EDF's largest answer is a page of app instances
    (1000, the server's largest ``limit``; the client asks 500). An app instance of the v2.1
    capture (one storage instance, one volume) is about 2.3 KB; give each 64 ACL entries and
    64 snapshots (about 23 KB each) and a page of 1000 still fits; the client's page of 500
    fits in less than half the limit."""
    ai = ai_json()
    si = ai["storage_instances"][0]
    si["acl_policy"]["initiators"] = [
        {"path": f"/initiators/iqn.1993-08.org.debian:01:host{i:04d}"} for i in range(64)
    ]
    si["volumes"][0]["snapshots"] = [
        {
            "path": f"{si['volumes'][0]['path']}/snapshots/1700000000.{i:09d}",
            "timestamp": f"1700000000.{i:09d}",
            "utc_ts": f"1700000000.{i:09d}",
            "uuid": "0b3c5b7e-2c1d-4c2e-9d77-4b9e3f6b1a2c",
            "op_state": "available",
        }
        for i in range(64)
    ]

    def page(count: int) -> int:
        return len(json.dumps({"data": [ai] * count, "metadata": {"total_count": count}}))

    assert page(1000) < MAX_BODY_BYTES
    assert page(DEFAULT_PAGE_SIZE) * 2 < MAX_BODY_BYTES


# -- the time an answer takes ---------------------------------------------------------------


def test_a_slow_drip_ends_by_the_calls_deadline() -> None:
    """Before: one byte every 0.5 s beat a 2 s read time-out (which bounds each socket read,
    not the answer) and the call ran on for as long as the server liked. Now each attempt's
    answer must be complete within connect + read time-out, and the retries end at the
    deadline: the call fails (ConnectionFailed, which the Store makes a 503) in bounded time."""
    clock = FakeClock()
    body = b'{"data": {"name": "' + b"x" * 10_000 + b'"}}'

    def slow(call: object) -> FakeResponse:
        response = FakeResponse(200, body)
        response.raw = FakeRaw(body, piece=1, on_read=lambda: clock.sleep(0.5))
        return response

    fake = FakeSession().on("GET", "/v2.2/system", slow)
    client = make_client(fake, clock=clock, connect_timeout=1, read_timeout=2, retry_deadline=5)
    start = clock.now
    with pytest.raises(errors.ConnectionFailed, match="not complete within 3s"):
        client.system()
    # The last attempt starts by the deadline (5 s) and is cut at its 3 s answer budget.
    assert clock.now - start <= 5 + 3 + 0.5
    assert len(fake.api_calls()) >= 2  # a slow answer is retried like a read time-out


# -- answers of the wrong shape -------------------------------------------------------------

AI = ai_json()
AI_PATH = f"/v2.2/app_instances/{AI['id']}"


def _with(**changes: object) -> dict[str, object]:
    return {**AI, **changes}


@pytest.mark.parametrize(
    ("route", "reply", "call", "field"),
    [
        pytest.param(
            "/v2.2/system",
            ok({"name": "c", "total_capacity": "lots", "available_capacity": 1}),
            lambda c: c.system(),
            "system.total_capacity",
            id="string capacity",
        ),
        pytest.param(
            AI_PATH, ok([AI]), lambda c: c.get_app_instance(AI["id"]), "app_instance", id="list"
        ),
        pytest.param(
            AI_PATH,
            ok(_with(storage_instances={"storage-1": {}})),
            lambda c: c.get_app_instance(AI["id"]),
            "app_instance.storage_instances",
            id="v2 dict of SIs",
        ),
        pytest.param(
            f"{AI_PATH}/metadata",
            ok("type=image"),
            lambda c: c.get_metadata(AI["id"]),
            "metadata",
            id="string metadata",
        ),
        pytest.param(
            "/v2.2/app_instances",
            ok([AI], metadata="total_count=1"),
            lambda c: c.list_app_instances(),
            "metadata",
            id="string listing metadata",
        ),
        pytest.param(
            "/v2.2/app_instances",
            ok(["OS-IMAGE-1"], metadata={"total_count": 1}),
            lambda c: c.list_app_instances(),
            "data[0]",
            id="listing of strings",
        ),
        pytest.param(
            f"{AI_PATH}/storage_instances/storage-1/acl_policy",
            ok({"initiators": "iqn.x"}),
            lambda c: c.get_acl(AI["id"]),
            "acl_policy.initiators",
            id="string ACL",
        ),
        pytest.param(
            AI_PATH,
            FakeResponse(302, b"", {"Location": "https://sso.example/login"}),
            lambda c: c.get_app_instance(AI["id"]),
            "HTTP 302 to https://sso.example/login",
            id="redirect",
        ),
    ],
)
def test_an_answer_of_the_wrong_shape_is_an_unexpected_response(
    route: str,
    reply: FakeResponse,
    call: Callable[[EdfClient], object],
    field: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Before: ValueError, AttributeError or TypeError from deep in the models (glance then
    answers 500 or, for a ValueError, 400 as if the user had erred: glance/notifier.py
    ``ImageProxy.set_data``), or a 302 taken for success. Now ``UnexpectedResponse`` naming
    the call and the field, logged once at ERROR (the Store makes it a BackendException)."""
    method = "GET"
    fake = FakeSession().on(method, route, reply)
    fake.on("GET", "/v2.2/system", ok({"sw_version": "3.2.5.0"}))
    if route == "/v2.2/system":
        fake.on("GET", route, reply)
    with caplog.at_level(logging.DEBUG), pytest.raises(errors.UnexpectedResponse) as info:
        call(make_client(fake))
    text = str(info.value)
    assert f"{method} {route}" in text and field in text, text
    errors_logged = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors_logged) == 1 and field in errors_logged[0].getMessage()


def test_the_captures_still_parse_strictly() -> None:
    """The strict models take every real EDF answer the project has (the v2.1 captures)."""
    listing = json.loads((PACKAGED / "ai_list_21.json").read_text())
    fake = FakeSession().on("GET", "/v2.1/app_instances", FakeResponse(200, listing))
    found = make_client(fake, api_version="2.1").list_app_instances()
    assert [ai.volume.size_gib for ai in found] == [10, 20]


# -- paging -----------------------------------------------------------------------------------


def _pages(fake: FakeSession, page: Callable[[dict[str, str]], dict[str, object]]) -> None:
    fake.on("GET", "/v2.2/app_instances", lambda call: FakeResponse(200, page(call.params)))


@pytest.mark.parametrize(
    ("name_prefix", "metadata"),
    [
        pytest.param(None, {"limit": -1, "offset": 0}, id="limit -1, empty pages"),
        pytest.param(None, {"limit": 0}, id="limit 0"),
        pytest.param(None, {"total_count": 10**12, "limit": 500}, id="total 10^12"),
        pytest.param("OS-IMAGE-", {"limit": -1}, id="filtered, limit -1"),
    ],
)
def test_paging_ends_on_what_was_asked_and_what_came_back(
    name_prefix: str | None, metadata: dict[str, object]
) -> None:
    """Before: ``limit = -1`` made the offset go backwards and empty pages never ended the
    loop; ``total_count = 10^12`` asked page after page (178 and 356 GETs in 8 s). Now the
    client advances by what it asked and an empty page ends an unfiltered listing."""
    fake = FakeSession()
    _pages(fake, lambda params: {"data": [], "metadata": metadata})
    assert make_client(fake).list_app_instances(name_prefix) == []
    assert len(fake.api_calls()) == 1


def test_a_filtered_listing_with_an_unbelievable_count_fails_at_once() -> None:
    """A filtered listing has to believe ``total_count`` (some releases filter after paging,
    so its pages may be empty), but not a count no tenant holds."""
    fake = FakeSession()
    _pages(fake, lambda params: {"data": [], "metadata": {"total_count": 10**12}})
    with pytest.raises(errors.UnexpectedResponse, match=r"total_count 1000000000000"):
        make_client(fake).list_app_instances("OS-IMAGE-")
    assert len(fake.api_calls()) == 1


def test_a_filtered_listing_still_pages_past_empty_pages() -> None:
    """What the bound keeps: a release that filters after paging (empty pages before the
    match) is still read to its ``total_count``."""
    fake = FakeSession()

    def page(params: dict[str, str]) -> dict[str, object]:
        data = [AI] if int(params["offset"]) == 1500 else []
        return {"data": data, "metadata": {"total_count": 1800, "limit": 500}}

    _pages(fake, page)
    assert [ai.name for ai in make_client(fake).list_app_instances("OS-IMAGE-")] == [AI["name"]]
    assert [c.params["offset"] for c in fake.api_calls()] == [0, 500, 1000, 1500]


def test_a_listing_that_never_ends_stops_at_the_bound() -> None:
    """A server inventing new items for ever (full pages, fresh ids) is cut at
    ``MAX_LISTED`` items."""
    fake = FakeSession()

    def page(params: dict[str, str]) -> dict[str, object]:
        start = int(params["offset"])
        data = [
            {"id": f"ai-{n}", "path": f"/app_instances/ai-{n}"} for n in range(start, start + 500)
        ]
        return {"data": data, "metadata": {"total_count": 10**12, "limit": 500}}

    _pages(fake, page)
    with pytest.raises(errors.UnexpectedResponse, match=f"more than {MAX_LISTED} items"):
        make_client(fake).list_app_instances()
    assert len(fake.api_calls()) == MAX_LISTED // 500


def test_a_page_bigger_than_asked_is_refused() -> None:
    fake = FakeSession()
    _pages(fake, lambda params: {"data": [AI] * 3, "metadata": {"limit": 2}})
    with pytest.raises(errors.UnexpectedResponse, match="3 items where 2 were asked"):
        make_client(fake, page_size=2).list_app_instances()


def test_the_command_line_says_what_to_check() -> None:
    """``datera-glance check`` and every command print an unexpected answer with a fix that
    names the options (before: no fix at all)."""
    problem = explain(errors.UnexpectedResponse("unexpected answer: HTTP 302", method="GET"))
    assert "datera_san_ip" in problem.fix and "HTTP 302" in problem.message
