"""Every HTTP exchange with EDF: send, retry as the ``RetryPolicy`` says, honour
``Retry-After``, scrub secrets, log one DEBUG line per request and report it to ``on_request``.

It knows URLs, statuses and bodies, not sessions, tenants or resources: the client builds the
headers and the ``Route`` and reads the ``Reply``.
"""

from __future__ import annotations

import collections
import email.utils
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import requests
from oslo_utils import strutils

from datera_glance.edf import errors
from datera_glance.edf.config import ClientConfig
from datera_glance.edf.retry import RetryPolicy

__all__ = [
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


def _decode(resp: Any) -> Any:
    content = resp.content or b""
    if not content:
        return None
    try:
        return json.loads(content)
    except ValueError:
        return content.decode("utf-8", "replace")


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
    ) -> None:
        """``secrets``: what to scrub from every message (the password); each call adds its
        own (the session key, a CHAP password)."""
        self.config = config
        self.policy = policy
        self._session = session
        self._secrets = tuple(secrets)
        self._sleep = sleep
        self._clock = clock
        self._wall_clock = wall_clock  # only for Retry-After given as an HTTP date
        self._on_request = on_request

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
        """One HTTP request: its reply, or the connection error that stood for one."""
        started = self._clock()
        status: int | None = None
        try:
            resp = self._session.request(
                method,
                self.config.base_url + path,
                params=params,
                data=data,
                headers=headers,
                timeout=(self.config.connect_timeout, self.config.read_timeout),
                verify=self.config.verify,
                allow_redirects=False,
            )
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
            elapsed = self._clock() - started
            LOG.debug("%s %s -> %s after %.3fs", method, path, type(exc).__name__, elapsed)
            return exc
        else:
            status = int(resp.status_code)
            elapsed = self._clock() - started
            LOG.debug("%s %s -> %d in %.3fs", method, path, status, elapsed)
            return Reply(status, _decode(resp), resp.headers)
        finally:
            if self._on_request is not None:
                self._on_request(
                    RequestRecord(method, route.template, status, self._clock() - started)
                )

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
        """``text`` without the password, session key or ``secrets`` (server echoes too)."""
        for secret in (*self._secrets, *secrets):
            if secret:
                text = text.replace(secret, "***")
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
