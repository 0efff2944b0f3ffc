"""The hostile-cluster cases that need a real socket and a real ``requests.Session``: the
transport streams the answer and stops reading at its size limit and its time budget.

The server is tests/plugins/hostile_http.py on 127.0.0.1. The time bounds below are liveness
bounds (the call ends at all), many times what the call needs, not speed measurements.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from datera_glance.edf import ClientConfig, EdfClient, errors
from datera_glance.edf.transport import MAX_BODY_BYTES
from tests.plugins.hostile_http import (
    HostileServer,
    Script,
    drip,
    drip_headers,
    flood,
    gzip_bomb,
)

SYSTEM = ("GET", "/v2.2/system")


def _client(port: int, **config: Any) -> EdfClient:
    settings: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": port,
        "ssl": False,
        "username": "admin",
        "password": "pw",
        "api_version": "2.2",
        **config,
    }
    return EdfClient(ClientConfig(**settings))


def _outcome(call: Callable[[], Any], limit: float) -> tuple[BaseException | None, float]:
    """Run ``call`` on a thread; its exception (None if it returned) and how long it took.
    Fails the test if it is still running after ``limit`` seconds."""
    result: list[BaseException | None] = []

    def run() -> None:
        try:
            call()
        except BaseException as exc:
            result.append(exc)
        else:
            result.append(None)

    start = time.monotonic()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(limit)
    assert not thread.is_alive(), f"the call was still running after {limit}s"
    return result[0], time.monotonic() - start


def test_a_dripping_server_cannot_hold_a_call_past_its_deadline() -> None:
    """One byte every 0.2 s of a 2,000-byte answer: each socket read is quick, so the read
    time-out alone never fires (before: the call would have run 400 s). Now the answer must
    be complete within connect + read time-out and the call ends soon after its deadline."""
    body = b'{"data": {"name": "' + b"x" * 2000 + b'"}}'
    with HostileServer({SYSTEM: drip(body, 0.2)}) as server:
        client = _client(server.port, connect_timeout=0.5, read_timeout=1, retry_deadline=1)
        error, _took = _outcome(client.system, limit=30)
    assert isinstance(error, errors.ConnectionFailed), error
    assert "not complete within 1.5s" in str(error)


@pytest.mark.parametrize("tls", [False, True], ids=["http", "https"])
def test_a_server_dripping_its_headers_cannot_hold_a_call_past_its_deadline(
    tls: bool, tmp_path: Path
) -> None:
    """The status line, then header lines one byte every 0.1 s for about a minute: requests
    waits for the headers with no bound but the read time-out of each socket read (before:
    the call took the whole minute). The connection is cut when the attempt's time is up, and
    the call ends as a slow answer (retried like one) soon after its deadline."""
    scripts = {SYSTEM: drip_headers(0.1, 50)}
    with HostileServer(scripts, tls_dir=tmp_path / "tls" if tls else None) as server:
        client = _client(
            server.port,
            ssl=tls,
            ca_file=server.ca_file,
            connect_timeout=0.5,
            read_timeout=1,
            retry_deadline=1,
        )
        error, took = _outcome(client.system, limit=20)
    assert isinstance(error, errors.ConnectionFailed), error
    assert "not complete within 1.5s" in str(error)
    assert "cut when its time was up" in str(error)
    assert took < 10, "the call outlived its deadline by far"


@pytest.mark.parametrize(
    "script",
    [
        pytest.param(flood(MAX_BODY_BYTES + (8 << 20)), id="declared"),
        pytest.param(flood(MAX_BODY_BYTES + (8 << 20), declare=False), id="undeclared"),
        pytest.param(flood(MAX_BODY_BYTES + (8 << 20), chunked=True), id="chunked"),
        pytest.param(gzip_bomb(MAX_BODY_BYTES + (8 << 20)), id="gzip bomb"),
    ],
)
def test_an_oversized_answer_fails_without_being_read_whole(script: Script) -> None:
    with HostileServer({SYSTEM: script}) as server:
        client = _client(server.port)
        error, _took = _outcome(client.system, limit=60)
    assert isinstance(error, errors.UnexpectedResponse), error
    assert f"over the {MAX_BODY_BYTES} byte limit" in str(error)
    assert server.requests.count(SYSTEM) == 1


def test_an_answer_in_many_small_pieces_is_read_whole() -> None:
    """A legitimate chunked answer still arrives whole (read1 returns one socket read)."""
    with HostileServer({SYSTEM: flood(3 << 20, chunked=True)}) as server:
        client = _client(server.port)
        error, _took = _outcome(client.system, limit=60)
    # 3 MiB of blanks is not JSON: it reaches the client whole and then fails as a shape.
    assert isinstance(error, errors.UnexpectedResponse), error
    assert "limit" not in str(error)
