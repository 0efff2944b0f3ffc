"""EDF error classes and the one table that maps HTTP status and EDF error name to them.

Every error carries ``status`` (HTTP status, ``None`` when no response arrived), ``name`` (the
EDF error name from the body, e.g. ``NotFoundError``), ``message``, ``method`` and ``path``, so
callers and logs see what failed without parsing text.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

__all__ = [
    "AuthError",
    "Conflict",
    "ConnectionFailed",
    "EdfError",
    "InsufficientCapacity",
    "InternalError",
    "InvalidRequest",
    "Malformed",
    "NotFound",
    "PermissionDenied",
    "ServiceUnavailable",
    "Timeout",
    "UnexpectedResponse",
    "ValidationFailed",
    "error_class",
    "from_response",
]


class EdfError(Exception):
    """Base of every error the EDF client raises."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        name: str = "",
        method: str = "",
        path: str = "",
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.name = name
        self.method = method
        self.path = path
        self.request_id = request_id

    def __str__(self) -> str:
        where = f"{self.method} {self.path}".strip()
        what = " ".join(str(p) for p in (self.status, self.name) if p)
        parts = [p for p in (where, what) if p]
        prefix = ": ".join(parts)
        return f"{prefix}: {self.message}" if prefix else self.message

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status={self.status!r}, name={self.name!r}, "
            f"method={self.method!r}, path={self.path!r}, message={self.message!r})"
        )


class AuthError(EdfError):
    """Login refused, or still 401 after one re-login."""


class PermissionDenied(EdfError):
    """HTTP 403."""


class InvalidRequest(EdfError):
    """HTTP 400 or 405: the request is wrong and repeating it will not help."""


class ValidationFailed(InvalidRequest):
    """HTTP 422: the body failed the server's schema or semantic checks."""


class InsufficientCapacity(InvalidRequest):
    """The cluster has no room for the requested size."""


class NotFound(EdfError):
    """HTTP 404."""


class Conflict(EdfError):
    """HTTP 409: the object exists already (or the change conflicts with its state)."""


class InternalError(EdfError):
    """HTTP 500 (other than "still initializing", which is retried)."""


class ServiceUnavailable(EdfError):
    """HTTP 503 (or "still initializing") until the retry deadline passed."""


class ConnectionFailed(EdfError):
    """No HTTP response: connection errors until the retry deadline, or TLS failures."""


class Timeout(EdfError):
    """A client-side deadline passed (e.g. waiting for a storage instance to be available)."""


class UnexpectedResponse(EdfError):
    """An answer EDF does not give: a body over the size limit, a field of the wrong type, a
    body that is not the object the call returns, a status outside 2xx and the error codes
    (a redirect). Not retried; the message names the call and the field."""


class Malformed(ValueError):
    """One field of an answer does not fit EDF's schema. Raised by the models; the session
    turns it into ``UnexpectedResponse`` naming the call."""

    def __init__(self, field: str, expected: str, value: Any) -> None:
        shown = repr(value)
        if len(shown) > 60:
            shown = shown[:57] + "..."
        super().__init__(f"{field} should be {expected}, not {type(value).__name__} {shown}")
        self.field = field


# The one table. Status decides first; the EDF name decides for statuses not listed here.
_BY_STATUS: dict[int, type[EdfError]] = {
    400: InvalidRequest,
    401: AuthError,
    403: PermissionDenied,
    404: NotFound,
    405: InvalidRequest,
    409: Conflict,
    422: ValidationFailed,
    500: InternalError,
    503: ServiceUnavailable,
}

_BY_NAME: dict[str, type[EdfError]] = {
    "InsufficientCapacityError": InsufficientCapacity,
    "NotFoundError": NotFound,
    "InvalidRouteError": NotFound,
    "ConflictError": Conflict,
    "AuthFailedError": AuthError,
    "InvalidSessionKeyError": AuthError,
    "PermissionDeniedError": PermissionDenied,
    "ValidationFailedError": ValidationFailed,
    "InvalidRequestError": InvalidRequest,
    "NotConnectedError": ServiceUnavailable,
    "DatabaseError": InternalError,
    "InternalError": InternalError,
}


def error_class(status: int | None, name: str = "", message: str = "") -> type[EdfError]:
    """Pick the exception class for an EDF error response."""
    if name == "InsufficientCapacityError" or (
        status in (400, 422) and "capacity" in message.lower()
    ):
        return InsufficientCapacity
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    if name in _BY_NAME:
        return _BY_NAME[name]
    if status is not None and status >= 500:
        return InternalError
    if status is not None and status >= 400:
        return InvalidRequest
    return EdfError


def from_response(
    status: int,
    body: Any,
    *,
    method: str,
    path: str,
    headers: Mapping[str, str] | None = None,
    scrub: Callable[[str], str] | None = None,
) -> EdfError:
    """Build the error for a non-2xx response; ``body`` is the decoded JSON or the raw text.

    ``scrub`` removes secrets from the message: a server may echo a rejected field's value.
    """
    name = ""
    message = ""
    request_id = None
    if isinstance(body, Mapping):
        name = str(body.get("name") or "")
        message = str(body.get("message") or "")
        errors = body.get("errors")
        if isinstance(errors, list) and errors:
            details = "; ".join(str(e) for e in errors)
            message = f"{message} ({details})" if message else details
        rid = body.get("api_req_id")
        request_id = str(rid) if rid is not None else None
    elif isinstance(body, str):
        message = body.strip()[:200]
    if not message:
        message = f"HTTP {status}"
    if request_id is None and headers is not None:
        request_id = headers.get("X-Request-Id") or headers.get("x-openstack-request-id")
    cls = error_class(status, name, message)
    if scrub is not None:
        message = scrub(message)
    return cls(message, status=status, name=name, method=method, path=path, request_id=request_id)
