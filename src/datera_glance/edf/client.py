"""The EDF REST client: one session, one ``_request()``, typed results.

Every HTTP exchange goes through :meth:`EdfClient._send` (timeouts, TLS, retries, DEBUG log)
and every API call through :meth:`EdfClient._request` (versioned URL, headers, login and one
re-login on 401, error mapping). Facts about the API and the upstream driver's bugs this client
avoids are in ``shared/docs/edf-api.md``.
"""

from __future__ import annotations

import email.utils
import json
import logging
import random as _random
import re
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import quote

import requests
from oslo_utils import strutils

from datera_glance import __version__
from datera_glance.edf import errors, models

__all__ = ["DRIVER_HEADER", "ClientConfig", "EdfClient", "normalize_tenant"]

LOG = logging.getLogger(__name__)

DRIVER_HEADER = f"OpenStack-Glance-datera-glance/{__version__}"
HTTP_PORT = 7717
HTTPS_PORT = 7718
API_VERSIONS = ("2.2", "2.1")  # "auto" tries them in this order
# Product versions from which AI metadata lives at int_ecosystem_data (edf-api.md §2.2, §4).
ECOSYSTEM_DATA_SINCE = (3, 3)
STILL_INITIALIZING = "REST server is still initializing"

# Backoff between retries: capped exponential with "equal jitter" (half fixed, half random),
# so a cluster restarting under many clients is not hit in lockstep.
BACKOFF_BASE = 0.5
BACKOFF_CAP = 15.0
DEFAULT_PAGE_SIZE = 500  # v2.2 list page; the server allows up to 1000

# Tenant path segments: EDF's name characters. Length limits are left to the server.
_TENANT_SEGMENT_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_\-\.]*$")
# Characters that mean something in an RQL match() regex. Not '-': names use it and an
# escaped '-' is an error in some regex dialects.
_REGEX_SPECIAL = re.compile(r"([.^$*+?()\[\]{}|\\])")


def _regex_escape(text: str) -> str:
    return _REGEX_SPECIAL.sub(r"\\\1", text)


def normalize_tenant(tenant: str | None) -> str:
    """Return the tenant header value: ``""``/``root`` -> ``/root``, ``a/b`` -> ``/root/a/b``.

    Unlike upstream's ``_format_tenant``, a name merely containing "root" is not mapped to
    ``/root``, and several levels are kept.
    """
    text = (tenant or "").strip().strip("/")
    if not text or text == "root":
        return "/root"
    parts = text.split("/")
    if parts[0] != "root":
        parts.insert(0, "root")
    for part in parts[1:]:
        if not _TENANT_SEGMENT_RE.match(part):
            raise ValueError(f"invalid EDF tenant name {part!r} in {tenant!r}")
    return "/" + "/".join(parts)


@dataclass(frozen=True)
class ClientConfig:
    """Where and how to reach one EDF cluster."""

    host: str
    port: int = HTTPS_PORT
    username: str = ""
    password: str = field(default="", repr=False)
    tenant: str = "/root"  # "/root", "/root/a", "/root/a/b"; "a" -> "/root/a"
    api_version: str = "auto"  # "auto" | "2.2" | "2.1"
    ssl: bool | None = None  # None: https unless port == 7717
    ssl_verify: bool = True
    ca_file: str | None = None
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    retry_deadline: float = 120.0  # total time for retries of one call

    def __post_init__(self) -> None:
        object.__setattr__(self, "tenant", normalize_tenant(self.tenant))
        version = self.api_version.strip().lstrip("v")
        if version not in ("auto", *API_VERSIONS):
            raise ValueError(f"api_version must be auto, 2.2 or 2.1, not {self.api_version!r}")
        object.__setattr__(self, "api_version", version)
        if not self.host:
            raise ValueError("host is required")
        if not 0 < self.port < 65536:
            raise ValueError(f"port must be 1..65535, not {self.port}")
        if self.connect_timeout <= 0 or self.read_timeout <= 0 or self.retry_deadline < 0:
            raise ValueError("timeouts must be positive and retry_deadline not negative")

    @property
    def use_ssl(self) -> bool:
        return self.ssl if self.ssl is not None else self.port != HTTP_PORT

    @property
    def base_url(self) -> str:
        host = self.host
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"  # IPv6 literal
        scheme = "https" if self.use_ssl else "http"
        return f"{scheme}://{host}:{self.port}"


class Transport(Protocol):
    """What the client needs of a ``requests.Session``; tests inject a fake."""

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


@dataclass
class _Reply:
    """One HTTP response, decoded, plus whether a connection error preceded it."""

    status: int
    body: Any
    headers: Mapping[str, str]
    after_connection_error: bool


AiRef = str | models.AppInstance


def _ai_id(ai: AiRef) -> str:
    if isinstance(ai, models.AppInstance):
        return quote(ai.id or ai.name, safe="")
    return quote(ai, safe="")


def _paths(refs: Iterable[Any]) -> list[str]:
    return [str(r["path"]) if isinstance(r, Mapping) else str(r) for r in refs]


def _retry_after(headers: Mapping[str, str], now_wall: float) -> float | None:
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


class EdfClient:
    """A client for one EDF cluster and tenant. Thread-safe; reuse one per backend."""

    def __init__(
        self,
        config: ClientConfig,
        *,
        session: Transport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        random: Callable[[], float] = _random.random,
        wall_clock: Callable[[], float] = time.time,
        page_size: int = DEFAULT_PAGE_SIZE,
    ) -> None:
        self.config = config
        self._own_session = session is None
        self._session: Transport = session if session is not None else requests.Session()
        self._sleep = sleep
        self._clock = clock
        self._random = random
        self._wall_clock = wall_clock  # only for Retry-After given as an HTTP date
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        self._page_size = page_size
        self._lock = threading.RLock()
        self._token: str | None = None
        self._version: str | None = None if config.api_version == "auto" else config.api_version
        self._system: models.System | None = None
        self._closed = False
        self._no_acl_member_op = False  # set once the cluster answered "no such route"
        self._verify: bool | str = config.ssl_verify
        if config.use_ssl and config.ssl_verify and config.ca_file:
            self._verify = config.ca_file
        if config.use_ssl and not config.ssl_verify:
            LOG.warning(
                "TLS certificate verification is OFF for EDF %s (ssl_verify=False): "
                "the connection can be intercepted",
                config.base_url,
            )

    def _quiet_insecure_warning(self) -> None:
        """Silence urllib3's per-request warning for this host only: we warned once above.

        Re-applied before each request because test runners and callers reset filters.
        """
        host = re.escape(self.config.host)
        warnings.filterwarnings(
            "ignore", message=rf"Unverified HTTPS request is being made to host '{host}'"
        )

    def __repr__(self) -> str:
        return f"EdfClient({self.config.base_url}, tenant={self.config.tenant!r})"

    def __enter__(self) -> EdfClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- session ---------------------------------------------------------------------------

    @property
    def api_version(self) -> str:
        """The API version in use ("2.2" or "2.1"); with "auto", negotiated at first login."""
        if self._version is None:
            self._ensure_login()
        assert self._version is not None
        return self._version

    def close(self) -> None:
        """Log out (best effort, no retries) and close the HTTP session."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            token, self._token = self._token, None
        if token is not None and self._version is not None:
            try:
                reply = self._send(
                    "PUT",
                    "logout",
                    self._version,
                    headers=self._headers(token=token, has_body=False),
                    retry=False,
                )
                if reply.status >= 400:
                    LOG.debug("EDF logout returned HTTP %d", reply.status)
            except errors.EdfError as exc:
                LOG.debug("EDF logout failed: %s", exc)
        if self._own_session:
            self._session.close()

    def _ensure_login(self) -> str:
        with self._lock:
            if self._closed:
                raise errors.EdfError("the EDF client is closed")
            if self._token is not None:
                return self._token
            versions = (self._version,) if self._version else API_VERSIONS
            for i, version in enumerate(versions):
                try:
                    token = self._login(version)
                except (errors.NotFound, errors.InvalidRequest) as exc:
                    if i == len(versions) - 1:
                        raise
                    LOG.info("EDF API v%s not available (%s); trying the next", version, exc)
                    continue
                self._token, self._version = token, version
                return token
            raise AssertionError("unreachable")

    def _login(self, version: str) -> str:
        body = {"name": self.config.username, "password": self.config.password}
        reply = self._send(
            "PUT", "login", version, data=json.dumps(body).encode(), headers=self._headers()
        )
        if reply.status >= 400:
            err = self._error(reply, "PUT", f"/v{version}/login")
            if isinstance(err, (errors.AuthError, errors.PermissionDenied)):
                raise errors.AuthError(
                    f"login refused for user {self.config.username!r}: {err.message}",
                    status=err.status,
                    name=err.name,
                    method="PUT",
                    path=f"/v{version}/login",
                )
            raise err
        key = reply.body.get("key") if isinstance(reply.body, Mapping) else None
        if not key:
            raise errors.AuthError(
                "login returned no session key",
                status=reply.status,
                method="PUT",
                path=f"/v{version}/login",
            )
        LOG.debug(
            "logged in to EDF %s as %r (API v%s)",
            self.config.base_url,
            self.config.username,
            version,
        )
        return str(key)

    def _relogin(self, stale_token: str) -> str:
        with self._lock:
            if self._token == stale_token:  # else another thread already logged in again
                self._token = None
            return self._ensure_login()

    # -- HTTP ------------------------------------------------------------------------------

    def _headers(
        self, *, token: str | None = None, tenant: str | None = None, has_body: bool = True
    ) -> dict[str, str]:
        headers = {"Accept": "application/json", "Datera-Driver": DRIVER_HEADER}
        if has_body:
            headers["Content-Type"] = "application/json; charset=utf-8"
        if token is not None:
            headers["Auth-Token"] = token
            headers["tenant"] = tenant or self.config.tenant
        return headers

    def _scrub(self, text: str, secrets: Iterable[str] = ()) -> str:
        for secret in (self.config.password, self._token, *secrets):
            if secret:
                text = text.replace(secret, "***")
        return str(strutils.mask_password(text))

    def _error(
        self, reply: _Reply, method: str, path: str, secrets: Iterable[str] = ()
    ) -> errors.EdfError:
        return errors.from_response(
            reply.status,
            reply.body,
            method=method,
            path=path,
            headers=reply.headers,
            scrub=lambda text: self._scrub(text, secrets),
        )

    def _backoff(self, attempt: int) -> float:
        ceiling = min(BACKOFF_CAP, BACKOFF_BASE * (2**attempt))
        return ceiling / 2 + self._random() * ceiling / 2

    @staticmethod
    def _decode(resp: Any) -> Any:
        content = resp.content or b""
        if not content:
            return None
        try:
            return json.loads(content)
        except ValueError:
            return content.decode("utf-8", "replace")

    @staticmethod
    def _retryable(status: int, body: Any) -> bool:
        if status == 503:
            return True
        if status == 500:
            message = body.get("message", "") if isinstance(body, Mapping) else str(body or "")
            return STILL_INITIALIZING in str(message)
        return False

    def _send(
        self,
        method: str,
        path: str,
        version: str,
        *,
        headers: dict[str, str],
        data: bytes | None = None,
        params: Mapping[str, Any] | None = None,
        retry: bool = True,
        secrets: Iterable[str] = (),
    ) -> _Reply:
        """One HTTP exchange, retried on connection errors, 503 and "still initializing".

        The body is encoded once by the caller and sent unchanged on every attempt.
        """
        url = f"{self.config.base_url}/v{version}/{path}"
        log_path = f"/v{version}/{path}"
        deadline = self._clock() + (self.config.retry_deadline if retry else 0.0)
        if self._verify is False and self.config.use_ssl:
            self._quiet_insecure_warning()
        after_connection_error = False
        attempt = 0
        while True:
            started = self._clock()
            try:
                resp = self._session.request(
                    method,
                    url,
                    params=params,
                    data=data,
                    headers=headers,
                    timeout=(self.config.connect_timeout, self.config.read_timeout),
                    verify=self._verify,
                    allow_redirects=False,
                )
            except requests.exceptions.SSLError as exc:
                # A certificate problem does not go away by retrying.
                LOG.debug("%s %s -> TLS error", method, log_path)
                raise errors.ConnectionFailed(
                    f"TLS failure talking to {self.config.base_url}: "
                    f"{self._scrub(str(exc), secrets)}",
                    method=method,
                    path=log_path,
                ) from exc
            except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
                elapsed = self._clock() - started
                LOG.debug("%s %s -> %s after %.3fs", method, log_path, type(exc).__name__, elapsed)
                after_connection_error = True
                failure: str = f"{type(exc).__name__}: {self._scrub(str(exc), secrets)}"
                reply: _Reply | None = None
                wait_hint: float | None = None
            else:
                elapsed = self._clock() - started
                status = int(resp.status_code)
                LOG.debug("%s %s -> %d in %.3fs", method, log_path, status, elapsed)
                reply = _Reply(status, self._decode(resp), resp.headers, after_connection_error)
                if not self._retryable(status, reply.body):
                    return reply
                failure = f"HTTP {status}"
                wait_hint = _retry_after(resp.headers, self._wall_clock())
            remaining = deadline - self._clock()
            delay = min(self._backoff(attempt), remaining)
            if wait_hint is not None:  # the server's word is a minimum
                delay = max(delay, wait_hint)
            if remaining <= 0 or delay > remaining:
                raise self._give_up(method, log_path, reply, failure, attempt + 1, secrets)
            LOG.info(
                "EDF %s %s failed (%s); retry %d in %.1fs",
                method,
                log_path,
                failure,
                attempt + 1,
                delay,
            )
            self._sleep(delay)
            attempt += 1

    def _give_up(
        self,
        method: str,
        path: str,
        reply: _Reply | None,
        failure: str,
        attempts: int,
        secrets: Iterable[str],
    ) -> errors.EdfError:
        within = f"after {attempts} attempt(s) within {self.config.retry_deadline:g}s"
        if reply is None:
            return errors.ConnectionFailed(
                f"no response from {self.config.base_url} {within}: {failure}",
                method=method,
                path=path,
            )
        err = self._error(reply, method, path, secrets)
        return errors.ServiceUnavailable(
            f"{err.message} ({within})",
            status=err.status,
            name=err.name,
            method=method,
            path=path,
            request_id=err.request_id,
        )

    def _exchange(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        params: Mapping[str, Any] | None = None,
        tenant: str | None = None,
        secrets: Iterable[str] = (),
    ) -> _Reply:
        """An authenticated exchange: log in if needed, log in again once on 401."""
        data = json.dumps(body).encode() if body is not None else None
        version = self.api_version

        def send(token: str) -> _Reply:
            return self._send(
                method,
                path,
                version,
                headers=self._headers(token=token, tenant=tenant, has_body=data is not None),
                data=data,
                params=params,
                secrets=secrets,
            )

        token = self._ensure_login()
        reply = send(token)
        if reply.status == 401:
            LOG.debug("EDF session expired or refused; logging in again")
            again = send(self._relogin(token))
            again.after_connection_error |= reply.after_connection_error
            reply = again
        return reply

    def _request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        params: Mapping[str, Any] | None = None,
        tenant: str | None = None,
        secrets: Iterable[str] = (),
        on_retried_conflict: Callable[[], Any] | None = None,
    ) -> Any:
        """Make one API call and return the unwrapped ``data`` of the envelope.

        :param on_retried_conflict: for a POST: called when the POST got 409 after a
            connection error (the first try may have worked); returns the object's data,
            or None if it is not ours after all.
        :raises errors.EdfError: the mapped subclass for any error status.
        """
        reply = self._exchange(method, path, body, params=params, tenant=tenant, secrets=secrets)
        if reply.status < 400:
            if isinstance(reply.body, Mapping) and "data" in reply.body:
                return reply.body["data"]
            return reply.body
        log_path = f"/v{self.api_version}/{path}"
        if reply.after_connection_error:
            if method == "POST" and reply.status == 409 and on_retried_conflict is not None:
                found = on_retried_conflict()
                if found is not None:
                    LOG.info("POST %s: 409 after a lost response; the first try worked", log_path)
                    return found
            if method == "DELETE" and reply.status == 404:
                LOG.info("DELETE %s: 404 after a lost response; the first try worked", log_path)
                return None
        raise self._error(reply, method, log_path, secrets)

    def _list(self, path: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """GET a collection, following v2.2 paging until every item is read."""
        params = dict(params or {})
        if self.api_version == "2.1":
            whole = self._checked_get(path, params)
            listed = list(whole.get("data") or [])
            count = (whole.get("metadata") or {}).get("total")
            if isinstance(count, int) and count > len(listed):
                LOG.warning("EDF v2.1 listed %d of %d items of %s", len(listed), count, path)
            return listed
        items: list[dict[str, Any]] = []
        seen: set[str] = set()
        offset = 0
        while True:
            reply = self._checked_get(path, {**params, "offset": offset, "limit": self._page_size})
            page = list(reply.get("data") or [])
            meta = reply.get("metadata") or {}
            new = 0
            for item in page:
                key = str(item.get("path") or item.get("id") or id(item))
                if key not in seen:
                    seen.add(key)
                    items.append(item)
                    new += 1
            limit = int(meta.get("limit") or self._page_size)
            total = meta.get("total_count")
            # Advance by the page size, not by what came back: on some releases the filter
            # is applied after paging, so a page can hold fewer (even zero) matching items.
            offset = int(meta.get("offset", offset)) + limit
            if isinstance(total, int):
                if offset >= total:
                    break
            elif len(page) < limit:
                break
            if page and not new:  # the server ignores offset: stop rather than loop forever
                LOG.warning("EDF ignored offset while listing %s; stopping", path)
                break
        return items

    def _checked_get(self, path: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """One page of a collection, with its envelope (``data`` and ``metadata``)."""
        reply = self._exchange("GET", path, params=params)
        if reply.status >= 400:
            err = self._error(reply, "GET", f"/v{self.api_version}/{path}")
            # Some releases answer an empty collection with an error "No data at ..."
            # (the SDK's list() turns it into an empty list too).
            if err.message.startswith("No data at "):
                return {"data": []}
            raise err
        return reply.body if isinstance(reply.body, dict) else {"data": reply.body}

    # -- system and tenants ----------------------------------------------------------------

    def system(self) -> models.System:
        """``GET /system`` (also refreshes the cached product version)."""
        system = models.System.from_json(self._request("GET", "system"))
        self._system = system
        return system

    def _product_version(self) -> tuple[int, ...]:
        system = self._system or self.system()
        return system.version_tuple

    def ensure_tenant(self) -> None:
        """Create every missing level of the configured tenant (``/root/a/b``: a, then b)."""
        tenant = self.config.tenant
        if tenant == "/root":
            return
        segments = tenant.strip("/").split("/")
        try:
            self._request("GET", "tenants/" + "/".join(quote(s) for s in segments), tenant="/root")
            return
        except errors.NotFound:
            pass
        parent = "/root"
        for name in segments[1:]:
            try:
                self._request(
                    "POST", "tenants", {"name": name, "parent_path": parent}, tenant="/root"
                )
                LOG.info("created EDF tenant %s/%s", parent, name)
            except errors.Conflict:
                pass  # exists already
            parent = f"{parent}/{name}"

    # -- app instances ---------------------------------------------------------------------

    def create_app_instance(
        self,
        name: str,
        *,
        uuid: str,
        size_gib: int,
        replica_count: int = 3,
        placement_mode: str = "hybrid",
    ) -> models.AppInstance:
        """Create an app instance with one SI ``storage-1`` holding one volume ``volume-1``."""
        if size_gib < 1:
            raise ValueError(f"size_gib must be at least 1, not {size_gib}")
        body = {
            "name": name,
            "uuid": uuid,
            "create_mode": "openstack",
            "access_control_mode": "deny_all",
            "storage_instances": [
                {
                    "name": "storage-1",
                    "volumes": [
                        {
                            "name": "volume-1",
                            "size": int(size_gib),
                            "replica_count": replica_count,
                            "placement_mode": placement_mode,
                            "snapshot_policies": [],
                        }
                    ],
                }
            ],
        }

        def ours() -> dict[str, Any] | None:
            found = self._find_raw(name)
            return found if found is not None and found.get("uuid") == uuid else None

        data = self._request("POST", "app_instances", body, on_retried_conflict=ours)
        return models.AppInstance.from_json(data)

    def get_app_instance(self, ai: AiRef) -> models.AppInstance:
        """Get an app instance by id or name; :class:`errors.NotFound` if absent."""
        return models.AppInstance.from_json(self._request("GET", f"app_instances/{_ai_id(ai)}"))

    def _find_raw(self, name: str) -> dict[str, Any] | None:
        for item in self._list("app_instances", {"filter": f"name={name}"}):
            if item.get("name") == name:
                return item
        return None

    def find_app_instance(self, name: str) -> models.AppInstance | None:
        """The app instance with exactly this name in the tenant, or None."""
        found = self._find_raw(name)
        return models.AppInstance.from_json(found) if found is not None else None

    def list_app_instances(self, name_prefix: str | None = None) -> list[models.AppInstance]:
        """Every app instance in the tenant (all pages), optionally by name prefix."""
        params = {}
        if name_prefix:
            params["filter"] = f"match(name,^{_regex_escape(name_prefix)}.*)"
        items = self._list("app_instances", params)
        return [
            models.AppInstance.from_json(item)
            for item in items
            if not name_prefix or str(item.get("name", "")).startswith(name_prefix)
        ]

    def set_online(self, ai: AiRef) -> models.AppInstance:
        """Set ``admin_state`` online: the target (and the simulator's device) appears."""
        data = self._request("PUT", f"app_instances/{_ai_id(ai)}", {"admin_state": "online"})
        return models.AppInstance.from_json(data)

    def set_offline(self, ai: AiRef, *, force: bool = True) -> models.AppInstance:
        """Set ``admin_state`` offline; ``force`` overrides EDF's warnings (active sessions)."""
        body: dict[str, Any] = {"admin_state": "offline"}
        if force:
            body["force"] = True
        data = self._request("PUT", f"app_instances/{_ai_id(ai)}", body)
        return models.AppInstance.from_json(data)

    def delete_app_instance(self, ai: AiRef, *, force: bool = True) -> None:
        """Delete an app instance; :class:`errors.NotFound` if it is not there."""
        self._request("DELETE", f"app_instances/{_ai_id(ai)}", {"force": True} if force else None)

    def get_storage_instance(self, ai: AiRef, si: str = "storage-1") -> models.StorageInstance:
        """One storage instance: access (IQN, portals), ACL, auth type, volumes."""
        data = self._request("GET", f"app_instances/{_ai_id(ai)}/storage_instances/{quote(si)}")
        return models.StorageInstance.from_json(data)

    def resize_volume(
        self, ai: AiRef, size_gib: int, *, si: str = "storage-1", volume: str = "volume-1"
    ) -> models.Volume:
        """Set the volume's size in GiB (EDF resizes only offline app instances)."""
        path = f"app_instances/{_ai_id(ai)}/storage_instances/{quote(si)}/volumes/{quote(volume)}"
        return models.Volume.from_json(self._request("PUT", path, {"size": int(size_gib)}))

    def wait_available(
        self, ai: AiRef, *, si: str = "storage-1", timeout: float = 60.0
    ) -> models.StorageInstance:
        """Poll the storage instance until ``op_state == "available"``.

        :raises errors.Timeout: not available within ``timeout`` seconds.
        :raises errors.EdfError: the storage instance reports ``failed``.
        """
        deadline = self._clock() + timeout
        delay = 0.25
        while True:
            found = self.get_storage_instance(ai, si)
            if found.op_state == "available":
                return found
            if found.op_state == "failed":
                raise errors.EdfError(
                    f"storage instance {found.path or si} failed", method="GET", path=found.path
                )
            remaining = deadline - self._clock()
            if remaining <= 0:
                raise errors.Timeout(
                    f"storage instance {found.path or si} not available after {timeout:g}s "
                    f"(op_state {found.op_state!r})",
                    method="GET",
                    path=found.path,
                )
            self._sleep(min(delay, remaining))
            delay = min(delay * 2, 2.0)

    # -- metadata --------------------------------------------------------------------------

    def _metadata_path(self, ai: AiRef) -> tuple[str, bool]:
        ecosystem = self._product_version() >= ECOSYSTEM_DATA_SINCE
        leaf = "int_ecosystem_data" if ecosystem else "metadata"
        return f"app_instances/{_ai_id(ai)}/{leaf}", ecosystem

    @staticmethod
    def _metadata_dict(data: Any, ecosystem: bool) -> dict[str, Any]:
        if ecosystem and isinstance(data, Mapping) and isinstance(data.get("data"), Mapping):
            data = data["data"]  # int_ecosystem_data entities hold the dict in "data"
        return dict(data or {})

    def get_metadata(self, ai: AiRef) -> dict[str, Any]:
        """The app instance's metadata (``int_ecosystem_data`` on product >= 3.3)."""
        path, ecosystem = self._metadata_path(ai)
        return self._metadata_dict(self._request("GET", path), ecosystem)

    def put_metadata(self, ai: AiRef, data: dict[str, Any]) -> dict[str, Any]:
        """Set metadata keys; returns the metadata as stored."""
        path, ecosystem = self._metadata_path(ai)
        body = {"data": data} if ecosystem else data
        return self._metadata_dict(self._request("PUT", path, body), ecosystem)

    # -- initiators, ACL, CHAP -------------------------------------------------------------

    def _initiator_path(self, iqn: str) -> str:
        return f"initiators/{quote(iqn, safe=':')}"  # EDF takes the IQN's colons raw

    def get_initiator(self, iqn: str) -> models.Initiator | None:
        """The initiator as seen from the tenant (on v2.2 possibly a parent's), or None."""
        try:
            return models.Initiator.from_json(self._request("GET", self._initiator_path(iqn)))
        except errors.NotFound:
            return None

    def ensure_initiator(self, iqn: str, name: str) -> models.Initiator:
        """Register the host initiator in the tenant unless it is there already.

        On v2.2 initiators are tenant-scoped: one visible from a parent tenant gets an
        in-tenant copy, which the server accepts only with ``force``. v2.1 never gets
        ``force`` (its schema rejects unknown fields).
        """
        found = self.get_initiator(iqn)
        v22 = self.api_version == "2.2"
        if found is not None and (not v22 or found.tenant == self.config.tenant):
            return found
        body: dict[str, Any] = {"id": iqn, "name": name}
        if v22 and found is not None:
            body["force"] = True

        def existing() -> dict[str, Any] | None:
            raw: dict[str, Any] | None = self._request("GET", self._initiator_path(iqn))
            return raw

        try:
            data = self._request("POST", "initiators", body, on_retried_conflict=existing)
        except errors.Conflict:
            again = self.get_initiator(iqn)
            if again is None:
                raise
            return again
        except errors.InvalidRequest as exc:
            if not v22 or "force" in body or "override" not in exc.message.lower():
                raise
            body["force"] = True  # the server wants the tenant warning overridden
            data = self._request("POST", "initiators", body, on_retried_conflict=existing)
        return models.Initiator.from_json(data)

    def _acl_path(self, ai: AiRef, si: str) -> str:
        return f"app_instances/{_ai_id(ai)}/storage_instances/{quote(si)}/acl_policy"

    def get_acl(self, ai: AiRef, *, si: str = "storage-1") -> list[str]:
        """Initiator paths in the storage instance's ACL."""
        data = self._request("GET", self._acl_path(ai, si)) or {}
        return _paths(data.get("initiators") or ())

    def _modify_acl(self, ai: AiRef, si: str, change: Callable[[list[str]], list[str]]) -> None:
        # The fallback for clusters without the member operation. EDF has no conditional
        # update, so a concurrent change can be lost; PUT the full lists so groups are kept.
        path = self._acl_path(ai, si)
        data = self._request("GET", path) or {}
        initiators = _paths(data.get("initiators") or ())
        wanted = change(list(initiators))
        if wanted == initiators:
            return
        body = {
            "initiators": [{"path": p} for p in wanted],
            "initiator_groups": [{"path": p} for p in _paths(data.get("initiator_groups") or ())],
        }
        self._request("PUT", path, body)

    def _acl_member(self, ai: AiRef, si: str, op: str, initiator_path: str) -> bool:
        """EDF's atomic ACL member operation; False if the cluster does not have it.

        :raises errors.Conflict: ``add`` of an entry already present.
        :raises errors.NotFound: ``remove`` of an absent entry, or no such app instance.
        """
        if self._no_acl_member_op:
            return False
        try:
            self._request(
                "PUT", self._acl_path(ai, si) + "/initiators", {"op": op, "path": initiator_path}
            )
        except (errors.NotFound, errors.InvalidRequest) as exc:
            # Only the route itself missing means "no member operation": a 404 NotFoundError
            # is about the app instance or the entry, a 400/422 about the request.
            if not (exc.status == 405 or (exc.status == 404 and exc.name == "InvalidRouteError")):
                raise
            LOG.warning(
                "EDF %s has no atomic ACL member operation (%s); falling back to rewriting "
                "the whole ACL, which can lose a concurrent change",
                self.config.base_url,
                exc,
            )
            self._no_acl_member_op = True
            return False
        return True

    def add_acl_initiator(self, ai: AiRef, initiator_path: str, *, si: str = "storage-1") -> None:
        """Allow an initiator (``/initiators/<iqn>``) on the storage instance; idempotent.

        Atomic (``op: add``), so hosts adding themselves at once keep each other's entries.
        """
        try:
            if self._acl_member(ai, si, "add", initiator_path):
                return
        except errors.Conflict:
            return  # already present
        self._modify_acl(
            ai, si, lambda paths: paths if initiator_path in paths else [*paths, initiator_path]
        )

    def remove_acl_initiator(
        self, ai: AiRef, initiator_path: str, *, si: str = "storage-1"
    ) -> None:
        """Remove one initiator from the ACL, keeping every other entry; idempotent."""
        try:
            if self._acl_member(ai, si, "remove", initiator_path):
                return
        except errors.NotFound:
            # An absent entry is a 404 like a missing app instance: ask which (a missing app
            # instance raises NotFound from here).
            if initiator_path in self.get_acl(ai, si=si):
                raise
            return
        self._modify_acl(ai, si, lambda paths: [p for p in paths if p != initiator_path])

    def set_chap(self, ai: AiRef, username: str, password: str, *, si: str = "storage-1") -> None:
        """Require CHAP on the storage instance's target with these credentials."""
        body = {"type": "chap", "target_user_name": username, "target_pswd": password}
        path = f"app_instances/{_ai_id(ai)}/storage_instances/{quote(si)}/auth"
        self._request("PUT", path, body, secrets=(password,))

    def clear_chap(self, ai: AiRef, *, si: str = "storage-1") -> None:
        """Stop requiring CHAP on the storage instance's target."""
        path = f"app_instances/{_ai_id(ai)}/storage_instances/{quote(si)}/auth"
        self._request("PUT", path, {"type": "none"})
