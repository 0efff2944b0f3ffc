"""Every HTTP exchange with EDF: send, retry as the ``RetryPolicy`` says, honour
``Retry-After``, scrub secrets, log one DEBUG line per request and report it to ``on_request``.

It knows URLs, statuses and bodies, not sessions, tenants or resources: the client builds the
headers and the ``Route`` and reads the ``Reply``.
"""

from __future__ import annotations

import collections
import email.utils
import functools
import html
import json
import logging
import re
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import requests
from oslo_utils import strutils

from datera_glance.edf import deadline, errors
from datera_glance.edf.config import ClientConfig
from datera_glance.edf.retry import RetryPolicy

__all__ = [
    "MAX_BODY_BYTES",
    "HttpSession",
    "Reply",
    "RequestCounter",
    "RequestHook",
    "RequestRecord",
    "Route",
    "Transport",
    "retry_after",
]

LOG = logging.getLogger(__name__)

#: The largest answer read from the cluster. EDF's largest answer is a page of app instances:
#: at most 1000 (the server's largest ``limit``; the client asks 500) of about 2.3 KB each in
#: the v2.1 captures (one storage instance, one volume), 23 MB with 64 ACL entries and 64
#: snapshots each (tests/unit/test_edf_hostile.py measures it).
MAX_BODY_BYTES = 32 * 1024 * 1024
_READ_PIECE = 64 * 1024  # read1's largest piece: at most one socket read each

_PLACEHOLDER = re.compile(r":(\w+)")


class HttpSession(Protocol):
    """What the transport needs of a ``requests.Session``; tests inject a fake."""

    def request(
        self,
        method: str,
        url: str,
        *,
        params: Any = ...,
        data: Any = ...,
        headers: Any = ...,
        timeout: Any = ...,
        verify: Any = ...,
        allow_redirects: bool = ...,
        stream: bool = ...,
    ) -> Any: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Route:
    """An API path below ``/v2.x/`` and its template (``app_instances/:ai``), so that calls
    can be counted per endpoint whatever the ids in them."""

    template: str
    path: str

    @classmethod
    def to(cls, template: str, **segments: str) -> Route:
        """Fill each ``:name`` in ``template`` with ``segments[name]``, already URL-quoted."""
        return cls(template, _PLACEHOLDER.sub(lambda m: segments[m.group(1)], template))


@dataclass
class Reply:
    """One HTTP response, decoded, plus whether a connection error preceded it."""

    status: int
    body: Any
    headers: Mapping[str, str]
    after_connection_error: bool = False


@dataclass(frozen=True)
class RequestRecord:
    """What ``on_request`` hears of each HTTP request sent, retries and logins included."""

    method: str
    template: str  # the Route's template, e.g. "app_instances/:ai"
    status: int | None  # None: no response (connection error, timeout, TLS failure)
    seconds: float


RequestHook = Callable[[RequestRecord], None]


class RequestCounter:
    """An ``on_request`` hook that counts requests as ``"GET /app_instances/:ai"``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: collections.Counter[str] = collections.Counter()

    def __call__(self, record: RequestRecord) -> None:
        with self._lock:
            self._counts[f"{record.method} /{record.template}"] += 1

    @property
    def counts(self) -> dict[str, int]:
        """Requests per ``"METHOD /template"`` since the last ``reset``."""
        with self._lock:
            return dict(self._counts)

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self._counts.values())

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()


def retry_after(headers: Mapping[str, str], now_wall: float) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP date), or None."""
    value = headers.get("Retry-After")
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now_wall)


# How a secret can come back in an answer or an exception: the client sends it in a JSON body
# (ASCII escapes), a server or proxy may echo it as JSON, as Python's repr (EDF's ``errors``
# lists are printed with str()), URL-encoded or HTML-escaped, and an echo of an echo twice so.
_ENCODINGS: tuple[Callable[[str], str], ...] = (
    lambda text: json.dumps(text)[1:-1],
    lambda text: json.dumps(text, ensure_ascii=False)[1:-1],
    lambda text: repr(text)[1:-1],
    lambda text: urllib.parse.quote(text, safe=""),
    lambda text: urllib.parse.quote_plus(text, safe=""),
    html.escape,
)


@functools.lru_cache(maxsize=64)
def secret_forms(secret: str) -> tuple[str, ...]:
    """``secret`` and every encoding of it (and of those) above, longest first."""
    forms = {secret}
    for encode in _ENCODINGS:
        once = encode(secret)
        forms.add(once)
        forms.update(again(once) for again in _ENCODINGS)
    return tuple(sorted(forms, key=len, reverse=True))


def _decode(content: bytes) -> Any:
    if not content:
        return None
    try:
        return json.loads(content)
    except ValueError:
        return content.decode("utf-8", "replace")


class _TooLarge(Exception):
    """An answer over ``max_body`` bytes (declared or read); ``status``: the answer's."""

    def __init__(self, detail: str, status: int) -> None:
        super().__init__(detail)
        self.status = status


class SlowAnswer(requests.exceptions.ReadTimeout):
    """An answer not complete within its budget: retried like a read time-out."""


def _read_piece(raw: Any, size: int) -> bytes:
    """Up to ``size`` decoded bytes of a streamed body. urllib3 2 (OpenStack 2026.1 on) has
    ``read1``: what one socket read brings. urllib3 1.26 (2025.1, 2025.2) has only ``read``,
    which waits for ``size`` bytes or the end: against a server that drips, the transport's
    own session cuts the connection at the deadline there (``deadline``)."""
    read1 = getattr(raw, "read1", None)
    if read1 is None:
        older: bytes = raw.read(size, decode_content=True)
        return older
    piece: bytes = read1(size, decode_content=True)
    return piece


def _read_body(resp: Any, max_body: int, answer_by: float, clock: Callable[[], float]) -> bytes:
    """The whole body of a streamed response, at most ``max_body`` bytes, by ``answer_by``.

    ``raw.read1`` returns what one socket read brings (``read`` would wait for a whole
    piece), so the clock is looked at after every read of a dripping server; a read itself
    waits at most the read time-out.
    """
    status = int(resp.status_code)
    declared = resp.headers.get("Content-Length")
    if declared and declared.strip().isdigit() and int(declared) > max_body:
        raise _TooLarge(f"Content-Length {int(declared)}", status)
    pieces: list[bytes] = []
    size = 0
    while True:
        if clock() > answer_by:
            raise SlowAnswer(f"{size} bytes by then")
        piece = _read_piece(resp.raw, _READ_PIECE)
        if not piece:
            return b"".join(pieces)
        size += len(piece)
        if size > max_body:
            raise _TooLarge(f"more than {size - len(piece)} bytes", status)
        pieces.append(piece)


Outcome = Reply | requests.exceptions.RequestException


class Transport:
    """HTTP to one cluster with timeouts, TLS settings and retries. Thread-safe."""

    def __init__(
        self,
        config: ClientConfig,
        *,
        session: HttpSession,
        policy: RetryPolicy,
        secrets: Iterable[str] = (),
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        on_request: RequestHook | None = None,
        max_body: int = MAX_BODY_BYTES,
    ) -> None:
        """``secrets``: what to scrub from every message (the password); each call adds its
        own (the session key, a CHAP password). ``max_body``: the largest answer read."""
        self.config = config
        self.policy = policy
        self._session = session
        self._secrets = tuple(secrets)
        self._sleep = sleep
        self._clock = clock
        self._wall_clock = wall_clock  # only for Retry-After given as an HTTP date
        self._on_request = on_request
        self._max_body = max_body

    @property
    def answer_budget(self) -> float:
        """Seconds one attempt may take from sending to the answer's last byte."""
        return self.config.connect_timeout + self.config.read_timeout

    def send(
        self,
        method: str,
        route: Route,
        version: str,
        *,
        headers: dict[str, str],
        data: bytes | None = None,
        params: Mapping[str, Any] | None = None,
        retry: bool = True,
        secrets: Iterable[str] = (),
    ) -> Reply:
        """One exchange, retried while the policy says so; the body goes unchanged each time.

        :raises errors.ServiceUnavailable: still a retryable status at the deadline.
        :raises errors.ConnectionFailed: no response by the deadline, or a TLS failure.
        :raises errors.UnexpectedResponse: an answer over the size limit (not retried).
        """
        path = f"/v{version}/{route.path}"
        deadline = self._clock() + (self.policy.deadline if retry else 0.0)
        lost_response = False
        attempt = 0
        while True:
            outcome = self._attempt(method, route, path, headers, data, params)
            delay: float | None = None
            if isinstance(outcome, Reply):
                outcome.after_connection_error = lost_response
                if not self.policy.retryable(outcome.status, outcome.body):
                    return outcome
                failure = f"HTTP {outcome.status}"
                hint = retry_after(outcome.headers, self._wall_clock())
                delay = self.policy.next_delay(attempt, deadline - self._clock(), hint)
            else:
                lost_response = True
                failure = f"{type(outcome).__name__}: {self.scrub(str(outcome), secrets)}"
                if self.policy.retryable(error=outcome):
                    delay = self.policy.next_delay(attempt, deadline - self._clock())
            if delay is None:
                cause = outcome if isinstance(outcome, Exception) else None
                raise self._give_up(method, path, outcome, failure, attempt + 1, secrets) from cause
            LOG.info(
                "EDF %s %s failed (%s); retry %d in %.1fs",
                method,
                path,
                failure,
                attempt + 1,
                delay,
            )
            self._sleep(delay)
            attempt += 1

    def _attempt(
        self,
        method: str,
        route: Route,
        path: str,
        headers: dict[str, str],
        data: bytes | None,
        params: Mapping[str, Any] | None,
    ) -> Outcome:
        """One HTTP request: its reply, or the connection error that stood for one.

        The answer is streamed: at most ``max_body`` bytes, complete within
        ``answer_budget`` seconds (a server dripping bytes is a read time-out).
        """
        started = self._clock()
        status: int | None = None
        try:
            answer_by = started + self.answer_budget
            with deadline.answer_by(answer_by, self._clock) as watch:
                try:
                    reply = self._exchange(method, path, headers, data, params, answer_by)
                except Exception:
                    if not watch.fired:
                        raise
                if watch.fired:  # the timer cut the connection: whatever came of it, too late
                    raise SlowAnswer("the connection was cut when its time was up")
            status, body, answer_headers = reply
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
            elapsed = self._clock() - started
            if isinstance(exc, SlowAnswer):
                exc = SlowAnswer(f"answer not complete within {self.answer_budget:g}s ({exc})")
            LOG.debug("%s %s -> %s after %.3fs", method, path, type(exc).__name__, elapsed)
            return exc
        except _TooLarge as exc:
            status = exc.status
            message = (
                f"the cluster's answer is over the {self._max_body} byte limit ({exc}); "
                "EDF's largest answers are far smaller"
            )
            LOG.error("EDF %s %s -> %d: %s", method, path, status, message)
            raise errors.UnexpectedResponse(
                message, status=status, method=method, path=path
            ) from None
        else:
            elapsed = self._clock() - started
            LOG.debug("%s %s -> %d in %.3fs", method, path, status, elapsed)
            return Reply(status, _decode(body), answer_headers)
        finally:
            if self._on_request is not None:
                self._on_request(
                    RequestRecord(method, route.template, status, self._clock() - started)
                )

    def _exchange(
        self,
        method: str,
        path: str,
        headers: dict[str, str],
        data: bytes | None,
        params: Mapping[str, Any] | None,
        answer_by: float,
    ) -> tuple[int, bytes, Mapping[str, str]]:
        """Send one request; its status, whole body and headers."""
        resp = self._session.request(
            method,
            self.config.base_url + path,
            params=params,
            data=data,
            headers=headers,
            timeout=(self.config.connect_timeout, self.config.read_timeout),
            verify=self.config.verify,
            allow_redirects=False,
            stream=True,
        )
        try:
            body = _read_body(resp, self._max_body, answer_by, self._clock)
            return int(resp.status_code), body, resp.headers
        finally:
            resp.close()

    def _give_up(
        self,
        method: str,
        path: str,
        outcome: Outcome,
        failure: str,
        attempts: int,
        secrets: Iterable[str],
    ) -> errors.EdfError:
        base = self.config.base_url
        within = f"after {attempts} attempt(s) within {self.policy.deadline:g}s"
        if isinstance(outcome, requests.exceptions.SSLError):
            # A certificate problem does not go away by retrying.
            message = f"TLS failure talking to {base}: {self.scrub(str(outcome), secrets)}"
            return errors.ConnectionFailed(message, method=method, path=path)
        if not isinstance(outcome, Reply):
            message = f"no response from {base} {within}: {failure}"
            return errors.ConnectionFailed(message, method=method, path=path)
        err = self.error(outcome, method, path, secrets)
        return errors.ServiceUnavailable(
            f"{err.message} ({within})",
            status=err.status,
            name=err.name,
            method=method,
            path=path,
            request_id=err.request_id,
        )

    def scrub(self, text: str, secrets: Iterable[str] = ()) -> str:
        """``text`` without the password, session key or ``secrets``, in any encoding the
        transport or an echoing server produces (``secret_forms``)."""
        for secret in (*self._secrets, *secrets):
            if secret:
                for form in secret_forms(secret):
                    text = text.replace(form, "***")
        return str(strutils.mask_password(text))

    def error(
        self, reply: Reply, method: str, path: str, secrets: Iterable[str] = ()
    ) -> errors.EdfError:
        """The mapped, scrubbed error for a non-2xx reply."""
        return errors.from_response(
            reply.status,
            reply.body,
            method=method,
            path=path,
            headers=reply.headers,
            scrub=lambda text: self.scrub(text, secrets),
        )

    def close(self) -> None:
        self._session.close()
