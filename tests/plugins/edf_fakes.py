"""Shared fakes for the EDF client unit tests (imported by them; no fixtures).

``FakeSession`` stands in for ``requests.Session`` where the real simulator cannot be made to
misbehave deterministically: scripted statuses, dropped connections, Retry-After. ``FakeClock``
replaces ``time.monotonic``/``time.sleep`` so retry tests take no real time.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from requests.structures import CaseInsensitiveDict

from datera_glance.edf import ClientConfig, EdfClient
from datera_glance.edf.transport import RequestHook

PASSWORD = "S3cret_pa55word"


class FakeRaw:
    """``requests.Response.raw`` (urllib3's response) as far as the transport reads it:
    ``read1`` returns at most ``piece`` bytes; ``on_read`` runs before each read (a test's
    clock moves there to play a slow server)."""

    def __init__(
        self, content: bytes, *, piece: int = 1 << 20, on_read: Callable[[], None] | None = None
    ) -> None:
        self._content = content
        self._at = 0
        self.piece = piece
        self.on_read = on_read
        self.reads = 0

    def rewind(self) -> None:
        """Serve the body again from its start (a scripted reply used more than once)."""
        self._at = 0

    def read1(self, amt: int | None = None, decode_content: bool | None = None) -> bytes:
        if self.on_read is not None:
            self.on_read()
        self.reads += 1
        size = min(amt if amt is not None else len(self._content), self.piece)
        chunk = self._content[self._at : self._at + size]
        self._at += len(chunk)
        return chunk


class FakeResponse:
    """What the transport reads from a streamed ``requests.Response``: status, headers,
    ``raw.read1`` and ``close``."""

    def __init__(
        self, status: int, body: Any = None, headers: dict[str, str] | None = None
    ) -> None:
        self.status_code = status
        if isinstance(body, bytes):
            self.content = body
        elif body is None:
            self.content = b""
        else:
            self.content = json.dumps(body).encode()
        self.headers: CaseInsensitiveDict[str] = CaseInsensitiveDict(headers or {})
        self.raw = FakeRaw(self.content)
        self.closed = False

    def close(self) -> None:
        self.closed = True


def ok(data: Any, **envelope: Any) -> FakeResponse:
    """A 200 with the EDF envelope around ``data``."""
    return FakeResponse(
        200, {"tenant": "/root", "path": "/x", "version": "v2.2", "data": data, **envelope}
    )


def edf_error(status: int, name: str, message: str, **headers: str) -> FakeResponse:
    """An EDF error body: every one has name, code, http and message."""
    body = {"name": name, "code": 1000 + status, "http": status, "message": message}
    return FakeResponse(status, body, dict(headers))


@dataclass
class Call:
    method: str
    url: str
    version: str
    path: str
    params: dict[str, Any]
    body: Any
    headers: dict[str, str]
    timeout: Any
    verify: Any


Reply = FakeResponse | BaseException | Callable[[Call], FakeResponse]


@dataclass
class FakeSession:
    """Routes ``(METHOD, "/v2.x/path")`` to scripted replies and records every request.

    A route's replies are used in order; the last one repeats. Logins succeed by default and
    hand out fresh tokens ``tok-1``, ``tok-2``, ... so tests can see re-logins.
    """

    routes: dict[tuple[str, str], list[Reply]] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    closed: bool = False
    _tokens: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def __post_init__(self) -> None:
        for version in ("2.1", "2.2"):
            self.on("PUT", f"/v{version}/login", self._login)
            self.on("PUT", f"/v{version}/logout", FakeResponse(200, {}))

    def _login(self, call: Call) -> FakeResponse:
        return FakeResponse(200, {"key": f"tok-{next(self._tokens)}", "version": call.version})

    def on(self, method: str, path: str, *replies: Reply) -> FakeSession:
        """Replace the replies for one route."""
        self.routes[(method, path)] = list(replies)
        return self

    def request(
        self,
        method: str,
        url: str,
        *,
        params: Any = None,
        data: Any = None,
        headers: Any = None,
        timeout: Any = None,
        verify: Any = None,
        allow_redirects: bool = True,
        stream: bool = False,
    ) -> FakeResponse:
        path = urlsplit(url).path
        version = path.split("/")[1].lstrip("v")
        body = json.loads(data) if data is not None else None
        call = Call(
            method,
            url,
            version,
            path,
            dict(params or {}),
            body,
            dict(headers or {}),
            timeout,
            verify,
        )
        self.calls.append(call)
        replies = self.routes.get((method, path))
        if not replies:
            return FakeResponse(
                404,
                {
                    "name": "InvalidRouteError",
                    "code": 404,
                    "http": 404,
                    "message": f"no route {method} {path}",
                },
            )
        reply = replies.pop(0) if len(replies) > 1 else replies[0]
        if isinstance(reply, BaseException):
            raise reply
        if callable(reply):
            return reply(call)
        reply.raw.rewind()
        return reply

    def close(self) -> None:
        self.closed = True

    def api_calls(self) -> list[Call]:
        """Every call except login/logout."""
        return [c for c in self.calls if not c.path.endswith(("/login", "/logout"))]


class FakeClock:
    """A monotonic clock that only moves when the code under test sleeps."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0, seconds
        self.sleeps.append(seconds)
        self.now += seconds


def make_client(
    session: FakeSession,
    *,
    clock: FakeClock | None = None,
    random: float = 0.5,
    page_size: int = 500,
    on_request: RequestHook | None = None,
    **config: Any,
) -> EdfClient:
    """An EdfClient on the fake session; config defaults to an https cluster pinned to 2.2."""
    settings: dict[str, Any] = {
        "host": "edf.example",
        "username": "admin",
        "password": PASSWORD,
        "api_version": "2.2",
        **config,
    }
    clock = clock or FakeClock()
    return EdfClient(
        ClientConfig(**settings),
        session=session,
        sleep=clock.sleep,
        clock=clock,
        random=lambda: random,
        wall_clock=lambda: 1_700_000_000.0,
        page_size=page_size,
        on_request=on_request,
    )


def ai_json(
    name: str = "OS-IMAGE-1",
    *,
    ai_id: str = "11111111-2222-3333-4444-555555555555",
    uuid: str = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
    admin_state: str = "offline",
    op_state: str = "unavailable",
    size: int = 1,
    tenant: str = "/root",
) -> dict[str, Any]:
    """An app instance entity shaped like the v2.1 captures."""
    path = f"/app_instances/{ai_id}"
    si = f"{path}/storage_instances/storage-1"
    return {
        "tenant": tenant,
        "path": path,
        "id": ai_id,
        "name": name,
        "uuid": uuid,
        "admin_state": admin_state,
        "storage_instances": [
            {
                "path": si,
                "name": "storage-1",
                "admin_state": admin_state,
                "op_state": op_state,
                "access": {
                    "path": f"{si}/access",
                    "ips": ["10.0.0.5", "10.0.1.5"],
                    "iqn": "iqn.2013-05.com.daterainc:tc:01:sn:abc",
                },
                "acl_policy": {
                    "path": f"{si}/acl_policy",
                    "initiators": [],
                    "initiator_groups": [],
                },
                "auth": {"path": f"{si}/auth", "type": "none"},
                "volumes": [
                    {
                        "path": f"{si}/volumes/volume-1",
                        "name": "volume-1",
                        "uuid": "v-uuid",
                        "size": size,
                        "op_state": "available",
                    }
                ],
            }
        ],
    }
