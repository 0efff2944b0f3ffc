"""Requests, responses, EDF errors and the ``@route`` tables that map a path to a handler.

Two tables share one mechanism: ``API`` (the EDF REST API under ``/v2.x``, handlers get the
``Cluster``) and ``CONTROLS`` (the simulator's own ``/_sim/`` endpoints, handlers get the
``Simulator``). A handler is ``fn(target, request, *path_args) -> data | Response``.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

# EDF error names by HTTP status, for errors and injected faults. The numeric ``code`` values
# of the real product are not documented; these are the simulator's own.
ERROR_NAMES: dict[int, str] = {
    400: "InvalidRequestError",
    401: "AuthFailedError",
    403: "PermissionDeniedError",
    404: "NotFoundError",
    405: "InvalidRouteError",
    409: "ConflictError",
    422: "ValidationFailedError",
    500: "InternalError",
    503: "ServiceUnavailableError",
}
ERROR_CODES: dict[str, int] = {
    "InvalidRequestError": 1,
    "AuthFailedError": 2,
    "InvalidSessionKeyError": 3,
    "PermissionDeniedError": 4,
    "NotFoundError": 5,
    "InvalidRouteError": 6,
    "ConflictError": 7,
    "ValidationFailedError": 8,
    "InsufficientCapacityError": 9,
    "InternalError": 10,
    "ServiceUnavailableError": 11,
}


class ApiError(Exception):
    """An EDF error response."""

    def __init__(
        self, status: int, message: str, *, name: str | None = None, errors: Iterable[str] = ()
    ) -> None:
        super().__init__(message)
        self.status = status
        self.name = name or ERROR_NAMES.get(status, "InternalError")
        self.message = message
        self.errors = list(errors)


def error_body(
    status: int, name: str, message: str, errors: list[str], *, version: str, path: str, op: str
) -> dict[str, Any]:
    return {
        "name": name,
        "code": ERROR_CODES.get(name, 0),
        "http": status,
        "message": message,
        "errors": errors,
        "ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "version": f"v{version}" if version else "",
        "op": op,
        "path": path,
        "api_req_id": secrets.randbelow(2**31),
    }


@dataclass
class Request:
    method: str
    version: str  # "2.1" / "2.2"; "" for /_sim/
    path: str  # after the version prefix, no query string, e.g. "/app_instances/x"
    query: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    body: Any = None
    tenant: str = "/root"

    @property
    def segments(self) -> list[str]:
        return [s for s in self.path.split("/") if s]


@dataclass
class Response:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False  # close the connection without answering (an injected fault)


H = TypeVar("H", bound=Callable[..., Any])


@dataclass(frozen=True)
class Route:
    method: str
    pattern: tuple[str, ...]  # "*" is one segment, "**" the rest (at least one)
    handler: Callable[..., Any]
    schema_key: str | None  # the /api schema entry that validates the body
    auth: bool  # needs a session key (and a tenant header that exists)

    def match(self, segments: list[str]) -> list[str] | None:
        args: list[str] = []
        for i, p in enumerate(self.pattern):
            if i >= len(segments):
                return None
            if p == "**":
                args.append("/".join(segments[i:]))
                return args
            if p == "*":
                args.append(segments[i])
            elif p != segments[i]:
                return None
        return args if len(segments) == len(self.pattern) else None


class Router:
    """A table of routes, filled by the ``route`` decorator at import time."""

    def __init__(self) -> None:
        self.routes: list[Route] = []

    def route(
        self, method: str, pattern: str, schema_key: str | None = None, *, auth: bool = True
    ) -> Callable[[H], H]:
        def register(fn: H) -> H:
            segs = tuple(s for s in pattern.split("/") if s)
            self.routes.append(Route(method, segs, fn, schema_key, auth))
            return fn

        return register

    def resolve(self, method: str, path: str, segments: list[str]) -> tuple[Route, list[str]]:
        """The route for ``method`` on ``segments`` and its path arguments; 404 or 405 else."""
        matching = [(r, a) for r in self.routes if (a := r.match(segments)) is not None]
        if not matching:
            raise ApiError(404, f"No route for {path}", name="InvalidRouteError")
        for r, args in matching:
            if r.method == method:
                return r, args
        raise ApiError(405, f"Method {method} not allowed on {path}", name="InvalidRouteError")


API = Router()
CONTROLS = Router()
route = API.route
