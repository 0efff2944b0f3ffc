"""From an HTTP request's parts to a ``Response``: the version prefix, ``/api_versions``, the
``/_sim/`` controls, injected faults and EDF error bodies. The HTTP server only sends it."""

from __future__ import annotations

import functools
import hmac
import json
import logging
import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl

from datera_glance.simulator.cluster import Cluster
from datera_glance.simulator.faults import Fault, Faults
from datera_glance.simulator.routing import CONTROLS, ApiError, Request, Response, error_body

LOG = logging.getLogger(__name__)

_VERSION_RE = re.compile(r"^/v(\d+\.\d+)(/.*)?$")

CONTROL_AUTH = (
    "/_sim/ needs the control token in a Sim-Token header (the simulator writes it to "
    "DATA_DIR/control-token) or an EDF session key in Auth-Token (PUT /v2.x/login)"
)


class Gateway:
    """Answers requests for ``cluster`` (EDF API) and ``controller`` (``/_sim/`` handlers)."""

    def __init__(
        self,
        cluster: Cluster,
        faults: Faults,
        controller: Any,
        sleep: Callable[[float], None],
        control_token: str,
    ) -> None:
        self.cluster = cluster
        self.faults = faults
        self.controller = controller
        self.sleep = sleep
        self._control_token = control_token.encode()

    def __call__(
        self, method: str, path: str, query: str, headers: Mapping[str, str], raw: bytes
    ) -> Response:
        if path.startswith("/_sim/") or path == "/_sim":
            return self._control(method, path, headers, raw)
        m = _VERSION_RE.match(path)
        version = m.group(1) if m else ""
        sub = (m.group(2) or "/") if m else path
        fault = self.faults.take(method, sub)
        api = functools.partial(self._api, method, version, sub, query, headers, raw)
        if fault is None:
            return api()
        try:
            return self._faulted(fault, api, version, sub, method)
        finally:
            self.faults.done()

    def _faulted(
        self, fault: Fault, api: Callable[[], Response], version: str, sub: str, method: str
    ) -> Response:
        """The request under ``fault``: its delay, then its answer before or after the effect."""
        if fault.delay:
            self.sleep(fault.delay)
        if not fault.after:
            instead = fault.answer(version, sub, method)
            if instead is not None:
                return instead
        resp = api()
        if fault.after:
            return fault.answer(version, sub, method) or resp
        return resp

    def _api(
        self,
        method: str,
        version: str,
        sub: str,
        query: str,
        headers: Mapping[str, str],
        raw: bytes,
    ) -> Response:
        try:
            if not version:
                if sub == "/api_versions" and method == "GET":
                    versions = [f"v{v}" for v in self.cluster.api_versions]
                    return Response(200, {"api_versions": versions})
                raise ApiError(404, f"No route for {sub}", name="InvalidRouteError")
            if version not in self.cluster.api_versions:
                raise ApiError(
                    404, f"API version v{version} is not supported", name="InvalidRouteError"
                )
            req = Request(
                method=method,
                version=version,
                path=sub,
                query=dict(parse_qsl(query, keep_blank_values=True)),
                headers=headers,
                body=parse_body(raw, headers.get("Content-Type") or ""),
            )
            return self.cluster.handle(req)
        except ApiError as err:
            body = error_body(
                err.status, err.name, err.message, err.errors, version=version, path=sub, op=method
            )
            return Response(err.status, body)
        except Exception as exc:
            LOG.exception("simulator error on %s %s", method, sub)
            message = f"Simulator error: {exc}"
            body = error_body(
                500, "InternalError", message, [], version=version, path=sub, op=method
            )
            return Response(500, body)

    def _control(self, method: str, path: str, headers: Mapping[str, str], raw: bytes) -> Response:
        """``/_sim/`` requests: the control token or a session, no faults; errors are
        ``{"message"}`` bodies."""
        req = Request(method=method, version="", path=path)
        try:
            try:
                route, args = CONTROLS.resolve(method, path, req.segments)
            except ApiError:
                raise ApiError(404, f"no simulator control {method} {path}") from None
            if route.auth and not self._control_allowed(headers):
                raise ApiError(401, CONTROL_AUTH)
            req.body = parse_body(raw, "application/json")
            result = route.handler(self.controller, req, *args)
        except (ValueError, TypeError, KeyError, re.error) as exc:
            return Response(400, {"message": f"bad /_sim request: {exc}"})
        except ApiError as err:
            return Response(err.status, {"message": err.message})
        return result if isinstance(result, Response) else Response(200, result)

    def _control_allowed(self, headers: Mapping[str, str]) -> bool:
        """The control token (``Sim-Token``) or a live EDF session key (``Auth-Token``): a
        local user who knows neither reads and changes nothing."""
        token = (headers.get("Sim-Token") or "").encode()
        if token and hmac.compare_digest(token, self._control_token):
            return True
        key = headers.get("Auth-Token") or ""
        with self.cluster.lock:
            return bool(key) and self.cluster.sessions.touch(key)


def parse_body(raw: bytes, content_type: str) -> Any:
    if not raw.strip():
        return None
    if "application/x-www-form-urlencoded" in content_type:
        # The Go SDK logs in with a form-encoded body.
        return dict(parse_qsl(raw.decode()))
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"Request body is not valid JSON: {exc}") from None
