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
from typing import Any

from datera_glance import __version__
from datera_glance.edf import errors
from datera_glance.edf.config import API_VERSIONS, ClientConfig
from datera_glance.edf.transport import Reply, Route, Transport

__all__ = ["DEFAULT_PAGE_SIZE", "DRIVER_HEADER", "ApiSession"]

LOG = logging.getLogger(__name__)

DRIVER_HEADER = f"OpenStack-Glance-datera-glance/{__version__}"
DEFAULT_PAGE_SIZE = 500  # v2.2 list page; the server allows up to 1000
LOGIN = Route.to("login")
LOGOUT = Route.to("logout")


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
        self._version: str | None = None if config.api_version == "auto" else config.api_version
        self._closed = False
        self.transport = transport

    @property
    def api_version(self) -> str:
        """The API version in use ("2.2" or "2.1"); with "auto", negotiated at first login."""
        if self._version is None:
            self._ensure_login()
        assert self._version is not None
        return self._version

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
        path = f"/v{version}/login"
        data = json.dumps(body).encode()
        reply = self.transport.send("PUT", LOGIN, version, data=data, headers=self._headers())
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
        path = f"/v{self.api_version}/{route.path}"
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
        """GET a collection, following v2.2 paging until every item is read."""
        params = dict(params or {})
        if self.api_version == "2.1":
            whole = self._collection_page(route, params)
            listed = list(whole.get("data") or [])
            count = (whole.get("metadata") or {}).get("total")
            if isinstance(count, int) and count > len(listed):
                LOG.warning("EDF v2.1 listed %d of %d items of %s", len(listed), count, route.path)
            return listed
        items: list[dict[str, Any]] = []
        seen: set[str] = set()
        offset = 0
        while True:
            page_params = {**params, "offset": offset, "limit": self._page_size}
            reply = self._collection_page(route, page_params)
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
                LOG.warning("EDF ignored offset while listing %s; stopping", route.path)
                break
        return items

    def _collection_page(self, route: Route, params: Mapping[str, Any]) -> dict[str, Any]:
        """One page of a collection, with its envelope (``data`` and ``metadata``)."""
        reply = self._exchange("GET", route, params=params)
        if reply.status >= 400:
            path = f"/v{self.api_version}/{route.path}"
            err = self.transport.error(reply, "GET", path, self._secrets())
            # Some releases answer an empty collection with an error "No data at ..."
            # (the SDK's list() turns it into an empty list too).
            if err.message.startswith("No data at "):
                return {"data": []}
            raise err
        return reply.body if isinstance(reply.body, dict) else {"data": reply.body}
