"""The EDF REST client: typed operations on one cluster and tenant.

``EdfClient`` builds each call (route, body) for system, tenants, app instances and metadata
and turns the answers into ``models``; initiators, ACL and CHAP are its base
``access.AccessControl``. The session (``session.ApiSession``: login, re-login, version,
paging) and the transport (``transport.Transport``: HTTP, the ``RetryPolicy``, secret
scrubbing) do the rest. It knows EDF's resources and their quirks, not HTTP, retries or login.
"""

from __future__ import annotations

import logging
import random as _random
import re
import time
from collections.abc import Callable, Mapping
from typing import Any

from datera_glance.edf import deadline, errors, models, product
from datera_glance.edf.access import AccessControl
from datera_glance.edf.config import HTTPS_PORT, ClientConfig
from datera_glance.edf.retry import RetryPolicy
from datera_glance.edf.routes import (
    APP_INSTANCES,
    SYSTEM,
    TENANTS,
    AiRef,
    ai_route,
    si_route,
    tenant_route,
)
from datera_glance.edf.session import DEFAULT_PAGE_SIZE, ApiSession
from datera_glance.edf.transport import HttpSession, RequestHook, Route, Transport

__all__ = ["EdfClient", "transport_warning"]

LOG = logging.getLogger(__name__)

# Product versions from which AI metadata lives at int_ecosystem_data (Datera's python-sdk
# switches to it from 3.3.0.0).
ECOSYSTEM_DATA_SINCE = (3, 3)

# Characters that mean something in an RQL match() regex. Not '-': names use it and an
# escaped '-' is an error in some regex dialects.
_REGEX_SPECIAL = re.compile(r"([.^$*+?()\[\]{}|\\])")


def transport_warning(config: ClientConfig) -> str:
    """What an operator must know about how the credentials travel, or "" when they are safe:
    plain HTTP sends the password (at login) and the session key (every call) in clear text;
    TLS without verification lets anyone on the path pose as the cluster."""
    if not config.use_ssl:
        return (
            "plain HTTP: the password and the session key travel in clear text "
            f"(port {config.port}{', ssl off' if config.ssl is False else ''}); "
            f"use HTTPS (port {HTTPS_PORT})"
        )
    if not config.ssl_verify:
        return (
            "TLS certificate verification is OFF (ssl_verify=False): the connection can be "
            "intercepted and the password read"
        )
    return ""


def _regex_escape(text: str) -> str:
    return _REGEX_SPECIAL.sub(r"\\\1", text)


def _log_product(system: models.System) -> None:
    verdict = product.support_of(system.version_tuple)
    level = logging.WARNING if verdict is product.Support.UNKNOWN else logging.INFO
    LOG.log(
        level,
        "Datera EDF cluster %s: product version %s (%s; supported: %s)",
        system.name or "-",
        system.sw_version,
        verdict.value,
        product.lines(product.SUPPORTED),
    )


class EdfClient(AccessControl):
    """A client for one EDF cluster and tenant. Thread-safe; reuse one per backend.

    Initiators, ACL and CHAP come from ``AccessControl``.
    """

    def __init__(
        self,
        config: ClientConfig,
        *,
        session: HttpSession | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        random: Callable[[], float] = _random.random,
        wall_clock: Callable[[], float] = time.time,
        page_size: int = DEFAULT_PAGE_SIZE,
        on_request: RequestHook | None = None,
    ) -> None:
        """``session`` stands in for ``requests.Session``, ``sleep``/``clock``/``random``/
        ``wall_clock`` for the retry timing; ``on_request`` hears of every HTTP request
        (e.g. a ``RequestCounter``)."""
        self.config = config
        self._own_session = session is None
        transport = Transport(
            config,
            session=session if session is not None else deadline.guarded_session(),
            policy=RetryPolicy(deadline=config.retry_deadline, random=random),
            secrets=(config.password,),
            sleep=sleep,
            clock=clock,
            wall_clock=wall_clock,
            on_request=on_request,
        )
        super().__init__(ApiSession(config, transport, page_size=page_size))
        self._sleep = sleep
        self._clock = clock
        self._system: models.System | None = None
        warning = transport_warning(config)
        if warning:
            LOG.warning("EDF %s: %s", config.base_url, warning)

    def __repr__(self) -> str:
        return f"EdfClient({self.config.base_url}, tenant={self.config.tenant!r})"

    def __enter__(self) -> EdfClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def api_version(self) -> str:
        """The API version in use ("2.2" or "2.1"); with "auto", negotiated at first login."""
        return self._api.api_version

    def close(self) -> None:
        """Log out (best effort, no retries) and close the HTTP session if it is ours."""
        self._api.close()
        if self._own_session:
            self._api.transport.close()

    # -- system and tenants ----------------------------------------------------------------

    def system(self) -> models.System:
        """``GET /system`` (also refreshes the cached product version; the first one logs it)."""
        system = self._api.call("GET", SYSTEM, models.System.from_json)
        if self._system is None:
            _log_product(system)
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
            self._api.request("GET", tenant_route(tenant), tenant="/root")
            return
        except errors.NotFound:
            pass
        parent = "/root"
        for name in segments[1:]:
            try:
                body = {"name": name, "parent_path": parent}
                self._api.request("POST", TENANTS, body, tenant="/root")
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
        descr: str | None = None,
    ) -> models.AppInstance:
        """Create an app instance with one SI ``storage-1`` holding one volume ``volume-1``;
        ``descr`` (EDF: 3-128 letters, digits, spaces, ``_``, ``-``, ``.``) is set in the same
        request."""
        if size_gib < 1:
            raise ValueError(f"size_gib must be at least 1, not {size_gib}")
        body: dict[str, Any] = {
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
        if descr is not None:
            body["descr"] = descr

        def ours() -> dict[str, Any] | None:
            found = self._find_raw(name)
            if found is None or found.get("uuid") != uuid:
                return None
            return found if descr is None or found.get("descr") == descr else None

        return self._api.call(
            "POST", APP_INSTANCES, models.AppInstance.from_json, body, on_retried_conflict=ours
        )

    def get_app_instance(self, ai: AiRef) -> models.AppInstance:
        """Get an app instance by id or name; :class:`errors.NotFound` if absent."""
        return self._api.call("GET", ai_route(ai), models.AppInstance.from_json)

    def _find_raw(self, name: str) -> dict[str, Any] | None:
        for item in self._api.list_collection(APP_INSTANCES, {"filter": f"name={name}"}):
            if item.get("name") == name:
                return item
        return None

    def find_app_instance(self, name: str) -> models.AppInstance | None:
        """The app instance with exactly this name in the tenant, or None."""
        found = self._find_raw(name)
        if found is None:
            return None
        return self._api.parsed("GET", APP_INSTANCES, models.AppInstance.from_json, found)

    def lookup_app_instance(self, name: str) -> models.AppInstance | None:
        """The app instance named ``name`` in the tenant, or None, by one GET.

        EDF addresses an app instance by its id or, for backward compatibility, by its name
        (v2.1 schema, ``/app_instances/:id``; the SDK's ``post_to_get`` GETs
        ``app_instances/<name>``). The id is the cluster's own UUID, not the ``uuid`` given at
        create (the create schema has no ``id``), so the name is the key that reaches it
        directly: unlike ``find_app_instance``'s filtered listing, the cost does not grow with
        the tenant. A cluster that refuses the name as an id (400/422) is asked by listing.
        """
        try:
            found = self._api.call("GET", ai_route(name), models.AppInstance.from_json)
        except errors.NotFound:
            return None
        except errors.InvalidRequest:
            return self.find_app_instance(name)
        # The name was taken for another app instance's id: only the listing can tell.
        return found if found.name == name else self.find_app_instance(name)

    def list_app_instances(self, name_prefix: str | None = None) -> list[models.AppInstance]:
        """Every app instance in the tenant (all pages), optionally by name prefix."""
        params = {}
        if name_prefix:
            params["filter"] = f"match(name,^{_regex_escape(name_prefix)}.*)"
        items = self._api.list_collection(APP_INSTANCES, params)
        return [
            self._api.parsed("GET", APP_INSTANCES, models.AppInstance.from_json, item)
            for item in items
            if not name_prefix or str(item.get("name", "")).startswith(name_prefix)
        ]

    def set_online(self, ai: AiRef) -> models.AppInstance:
        """Set ``admin_state`` online: the target (and the simulator's device) appears."""
        body = {"admin_state": "online"}
        return self._api.call("PUT", ai_route(ai), models.AppInstance.from_json, body)

    def set_offline(self, ai: AiRef, *, force: bool = True) -> models.AppInstance:
        """Set ``admin_state`` offline; ``force`` overrides EDF's warnings (active sessions)."""
        body: dict[str, Any] = {"admin_state": "offline"}
        if force:
            body["force"] = True
        return self._api.call("PUT", ai_route(ai), models.AppInstance.from_json, body)

    def delete_app_instance(self, ai: AiRef, *, force: bool = True) -> None:
        """Delete an app instance; :class:`errors.NotFound` if it is not there."""
        self._api.request("DELETE", ai_route(ai), {"force": True} if force else None)

    def get_storage_instance(self, ai: AiRef, si: str = "storage-1") -> models.StorageInstance:
        """One storage instance: access (IQN, portals), ACL, auth type, volumes."""
        return self._api.call("GET", si_route(ai, si), models.StorageInstance.from_json)

    def resize_volume(
        self, ai: AiRef, size_gib: int, *, si: str = "storage-1", volume: str = "volume-1"
    ) -> models.Volume:
        """Set the volume's size in GiB (EDF resizes only offline app instances)."""
        route = ai_route(ai, "/storage_instances/:si/volumes/:volume", si=si, volume=volume)
        return self._api.call("PUT", route, models.Volume.from_json, {"size": int(size_gib)})

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

    def _metadata_route(self, ai: AiRef) -> tuple[Route, bool]:
        ecosystem = self._product_version() >= ECOSYSTEM_DATA_SINCE
        leaf = "int_ecosystem_data" if ecosystem else "metadata"
        return ai_route(ai, "/" + leaf), ecosystem

    @staticmethod
    def _metadata_parser(ecosystem: bool) -> Callable[[Any], dict[str, Any]]:
        def parse(data: Any) -> dict[str, Any]:
            if ecosystem and isinstance(data, Mapping) and isinstance(data.get("data"), Mapping):
                data = data["data"]  # int_ecosystem_data entities hold the dict in "data"
            return dict(models.entity(data or {}, "metadata"))

        return parse

    def get_metadata(self, ai: AiRef) -> dict[str, Any]:
        """The app instance's metadata (``int_ecosystem_data`` on product >= 3.3)."""
        route, ecosystem = self._metadata_route(ai)
        return self._api.call("GET", route, self._metadata_parser(ecosystem))

    def put_metadata(self, ai: AiRef, data: dict[str, Any]) -> dict[str, Any]:
        """Set metadata keys; returns the metadata as stored."""
        route, ecosystem = self._metadata_route(ai)
        body = {"data": data} if ecosystem else data
        return self._api.call("PUT", route, self._metadata_parser(ecosystem), body)
