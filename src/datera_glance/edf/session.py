"""An authenticated EDF API session: login, API version negotiation, one re-login on 401,
the envelope, errors of retried requests, paging, logout.

Everything goes through one ``Transport``. It knows API calls, not resources: the client
builds the routes and bodies and turns the data into models.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from datera_glance import __version__
from datera_glance.edf import errors, versions
from datera_glance.edf.config import ClientConfig
from datera_glance.edf.transport import Reply, Route, Transport

__all__ = ["DEFAULT_PAGE_SIZE", "DRIVER_HEADER", "ApiSession"]

LOG = logging.getLogger(__name__)

DRIVER_HEADER = f"OpenStack-Glance-datera-glance/{__version__}"
DEFAULT_PAGE_SIZE = 500  # v2.2 list page; the server allows up to 1000
LOGIN = Route.to("login")
LOGOUT = Route.to("logout")
#: The most items a v2.2 listing pages through (200 pages of 500; the benchmarks' largest
#: tenant holds 10,000). Some releases filter after paging (``total_count`` then counts the
#: whole tenant and pages may be empty), so only the count says when a filtered listing
#: ends: a ``total_count`` above this is not believed.
MAX_LISTED = 100_000

T = TypeVar("T")


class ApiSession:
    """One login shared by every thread; API calls with ``request`` and ``list``."""

    def __init__(
        self, config: ClientConfig, transport: Transport, *, page_size: int = DEFAULT_PAGE_SIZE
    ) -> None:
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        self.config = config
        self._page_size = page_size
        self._lock = threading.RLock()
        self._token: str | None = None
        self._version: str | None = (
            None if config.api_version == versions.AUTO else config.api_version
        )
        self._closed = False
        self.transport = transport

    @property
    def api_version(self) -> str:
        """The API version in use ("2.2" or "2.1"); with "auto", negotiated at first login."""
        if self._version is None:
            self._ensure_login()
        assert self._version is not None
        return self._version

    @property
    def capabilities(self) -> versions.ApiVersion:
        """What the version in use does (its row in ``edf.versions``)."""
        return versions.version(self.api_version)

    def close(self) -> None:
        """Log out (best effort, no retries); later calls raise ``EdfError``."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            token, self._token = self._token, None
        if token is None or self._version is None:
            return
        try:
            reply = self.transport.send(
                "PUT",
                LOGOUT,
                self._version,
                headers=self._headers(token=token, has_body=False),
                retry=False,
                secrets=(token,),
            )
            if reply.status >= 400:
                LOG.debug("EDF logout returned HTTP %d", reply.status)
        except errors.EdfError as exc:
            LOG.debug("EDF logout failed: %s", exc)

    # -- login -----------------------------------------------------------------------------

    def _ensure_login(self) -> str:
        with self._lock:
            if self._closed:
                raise errors.EdfError("the EDF client is closed")
            if self._token is not None:
                return self._token
            tried = (self._version,) if self._version else versions.NEGOTIATION_ORDER
            for i, version in enumerate(tried):
                try:
                    token = self._login(version)
                except (errors.NotFound, errors.InvalidRequest) as exc:
                    if i == len(tried) - 1:
                        raise
                    LOG.info("EDF API v%s not available (%s); trying the next", version, exc)
                    continue
                self._token, self._version = token, version
                return token
            raise AssertionError("unreachable")

    def _login(self, version: str) -> str:
        body = {"name": self.config.username, "password": self.config.password}
        path = f"/v{version}/login"
        data = json.dumps(body).encode()
        reply = self.transport.send("PUT", LOGIN, version, data=data, headers=self._headers())
        self._check_status(reply, "PUT", path)
        if reply.status >= 400:
            err = self.transport.error(reply, "PUT", path)
            if isinstance(err, (errors.AuthError, errors.PermissionDenied)):
                raise errors.AuthError(
                    f"login refused for user {self.config.username!r}: {err.message}",
                    status=err.status,
                    name=err.name,
                    method="PUT",
                    path=path,
                )
            raise err
        key = reply.body.get("key") if isinstance(reply.body, Mapping) else None
        if not key:
            raise errors.AuthError(
                "login returned no session key", status=reply.status, method="PUT", path=path
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

    def unexpected(
        self, method: str, path: str, problem: str, secrets: Iterable[str] = ()
    ) -> errors.UnexpectedResponse:
        """The error for an answer EDF does not give, logged here (once, at ERROR): glance
        logs a driver's BackendException without its message."""
        message = self.transport.scrub(f"unexpected answer: {problem}", self._secrets(secrets))
        LOG.error("EDF %s %s: %s", method, path, message)
        return errors.UnexpectedResponse(message, method=method, path=path)

    def _check_status(self, reply: Reply, method: str, path: str) -> None:
        """EDF answers 2xx or an error (4xx, 5xx); anything else (a redirect to a login page
        of a proxy, 1xx) is not an answer to the call."""
        if 200 <= reply.status < 300 or reply.status >= 400:
            return
        where = reply.headers.get("Location")
        to = f" to {where}" if where else ""
        raise self.unexpected(method, path, f"HTTP {reply.status}{to} instead of 2xx or an error")

    def _path(self, route: Route) -> str:
        return f"/v{self.api_version}/{route.path}"

    def parsed(self, method: str, route: Route, parse: Callable[[Any], T], data: Any) -> T:
        """``parse(data)``; a field that does not fit (``errors.Malformed``) is an
        ``UnexpectedResponse`` naming the call and the field."""
        try:
            return parse(data)
        except errors.Malformed as exc:
            raise self.unexpected(method, self._path(route), str(exc)) from None

    def call(
        self,
        method: str,
        route: Route,
        parse: Callable[[Any], T],
        body: Any = None,
        **options: Any,
    ) -> T:
        """``request`` and ``parse`` its data (``parsed``); ``options`` as for ``request``."""
        return self.parsed(method, route, parse, self.request(method, route, body, **options))

    def _secrets(self, extra: Iterable[str] = ()) -> tuple[str, ...]:
        """What to scrub from an error besides the password: ``extra`` and the session key."""
        return (*extra, self._token or "")

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

    # -- calls -----------------------------------------------------------------------------

    def _exchange(
        self,
        method: str,
        route: Route,
        body: Any = None,
        *,
        params: Mapping[str, Any] | None = None,
        tenant: str | None = None,
        secrets: Iterable[str] = (),
    ) -> Reply:
        """An authenticated exchange: log in if needed, log in again once on 401."""
        data = json.dumps(body).encode() if body is not None else None
        version = self.api_version

        def send(token: str) -> Reply:
            headers = self._headers(token=token, tenant=tenant, has_body=data is not None)
            return self.transport.send(
                method,
                route,
                version,
                headers=headers,
                data=data,
                params=params,
                secrets=(*secrets, token),
            )

        token = self._ensure_login()
        reply = send(token)
        if reply.status == 401:
            LOG.debug("EDF session expired or refused; logging in again")
            again = send(self._relogin(token))
            again.after_connection_error |= reply.after_connection_error
            reply = again
        self._check_status(reply, method, f"/v{version}/{route.path}")
        return reply

    def request(
        self,
        method: str,
        route: Route,
        body: Any = None,
        *,
        params: Mapping[str, Any] | None = None,
        tenant: str | None = None,
        secrets: Iterable[str] = (),
        on_retried_conflict: Callable[[], Any] | None = None,
    ) -> Any:
        """Make one API call and return the unwrapped ``data`` of the envelope.

        :param tenant: the tenant header, if not the configured tenant.
        :param secrets: more values to scrub from errors and logs (e.g. a CHAP password).
        :param on_retried_conflict: for a POST: called when the POST got 409 after a
            connection error (the first try may have worked); returns the object's data,
            or None if it is not ours after all.
        :raises errors.EdfError: the mapped subclass for any error status.
        """
        reply = self._exchange(method, route, body, params=params, tenant=tenant, secrets=secrets)
        if reply.status < 400:
            if isinstance(reply.body, Mapping) and "data" in reply.body:
                return reply.body["data"]
            return reply.body
        path = self._path(route)
        policy = self.transport.policy
        if reply.after_connection_error and policy.lost_response_success(method, reply.status):
            found = on_retried_conflict() if on_retried_conflict is not None else None
            if method == "DELETE" or found is not None:
                LOG.info(
                    "%s %s: %d after a lost response; the first try worked",
                    method,
                    path,
                    reply.status,
                )
                return found
        raise self.transport.error(reply, method, path, self._secrets(secrets))

    def list_collection(
        self, route: Route, params: Mapping[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        """GET a collection, following v2.2 paging until every item is read.

        Bounded by what was asked and what came back: pages of ``page_size`` items are asked
        at offsets the client counts itself, advancing by the server's ``limit`` only when it
        is between 1 and what was asked; an unfiltered listing ends at its first short page
        whatever ``total_count`` says; a filtered one ends at ``total_count`` (some releases
        filter after paging, so its pages may be short or even empty). No listing reads past
        ``MAX_LISTED`` items. A page of more items than asked, items that are not
        objects or a ``metadata`` that is not one are an ``UnexpectedResponse``.
        """
        params = dict(params or {})
        if not self.capabilities.pages:
            listed, meta = self._page(route, params)
            count = meta.get("total")
            if isinstance(count, int) and count > len(listed):
                LOG.warning("EDF v2.1 listed %d of %d items of %s", len(listed), count, route.path)
            return listed
        filtered = "filter" in params
        items: list[dict[str, Any]] = []
        seen: set[str] = set()
        offset = 0
        while True:
            page, meta = self._page(route, {**params, "offset": offset, "limit": self._page_size})
            step = self._step(route, meta, len(page))
            new = 0
            for item in page:
                key = str(item.get("path") or item.get("id") or id(item))
                if key not in seen:
                    seen.add(key)
                    items.append(item)
                    new += 1
            offset += step
            total = self._total(route, meta, filtered)
            if (total is not None and offset >= total) or (
                len(page) < step and (total is None or not filtered)
            ):
                break
            if page and not new:  # the server ignores offset: stop rather than loop forever
                LOG.warning("EDF ignored offset while listing %s; stopping", route.path)
                break
            if offset >= MAX_LISTED:
                path = self._path(route)
                raise self.unexpected("GET", path, f"more than {MAX_LISTED} items")
        return items

    def _step(self, route: Route, meta: Mapping[str, Any], count: int) -> int:
        """How far the next page starts: the server's ``limit`` if it is between 1 and what
        was asked (a server may cap it), else what was asked."""
        limit = meta.get("limit")
        step = self._page_size
        if isinstance(limit, int) and not isinstance(limit, bool) and 0 < limit < step:
            step = limit
        if count > step:
            problem = f"data holds {count} items where {step} were asked"
            raise self.unexpected("GET", self._path(route), problem)
        return step

    def _total(self, route: Route, meta: Mapping[str, Any], filtered: bool) -> int | None:
        total = meta.get("total_count")
        if not isinstance(total, int) or isinstance(total, bool) or total < 0:
            return None
        if filtered and total > MAX_LISTED:
            problem = f"metadata.total_count {total} is over the {MAX_LISTED} a listing reads"
            raise self.unexpected("GET", self._path(route), problem)
        return total

    def _page(
        self, route: Route, params: Mapping[str, Any]
    ) -> tuple[list[dict[str, Any]], Mapping[str, Any]]:
        """One page: its items (each an object) and its ``metadata`` (an object)."""
        return self.parsed("GET", route, _page_parts, self._collection_page(route, params))

    def _collection_page(self, route: Route, params: Mapping[str, Any]) -> dict[str, Any]:
        """One page of a collection, with its envelope (``data`` and ``metadata``)."""
        reply = self._exchange("GET", route, params=params)
        if reply.status >= 400:
            err = self.transport.error(reply, "GET", self._path(route), self._secrets())
            # Some releases answer an empty collection with an error "No data at ..."
            # (the SDK's list() turns it into an empty list too).
            if err.message.startswith("No data at "):
                return {"data": []}
            raise err
        return reply.body if isinstance(reply.body, dict) else {"data": reply.body}


def _page_parts(body: Mapping[str, Any]) -> tuple[list[dict[str, Any]], Mapping[str, Any]]:
    """A listing page's items (each an object) and ``metadata`` (an object);
    ``errors.Malformed`` naming the field that is neither."""
    data, meta = body.get("data"), body.get("metadata")
    if data is not None and not isinstance(data, list):
        raise errors.Malformed("data", "an array", data)
    if meta is not None and not isinstance(meta, Mapping):
        raise errors.Malformed("metadata", "an object", meta)
    for i, item in enumerate(data or ()):
        if not isinstance(item, dict):
            raise errors.Malformed(f"data[{i}]", "an object", item)
    return list(data or ()), meta or {}
