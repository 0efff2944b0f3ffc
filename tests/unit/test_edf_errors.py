"""The status/EDF-name -> exception table, through the client's one request path."""

from __future__ import annotations

import pytest

from datera_glance.edf import errors
from tests.plugins.edf_fakes import FakeResponse, FakeSession, edf_error, make_client

PATH = "/v2.2/app_instances/x"


@pytest.mark.parametrize(
    ("status", "name", "message", "cls"),
    [
        (400, "InvalidRequestError", "bad field", errors.InvalidRequest),
        (403, "PermissionDeniedError", "not yours", errors.PermissionDenied),
        (404, "NotFoundError", "no such app instance", errors.NotFound),
        (405, "InvalidRequestError", "method not allowed", errors.InvalidRequest),
        (409, "ConflictError", "already exists", errors.Conflict),
        (422, "ValidationFailedError", "size must be <= 32768", errors.ValidationFailed),
        (422, "InsufficientCapacityError", "not enough space", errors.InsufficientCapacity),
        (
            400,
            "InvalidRequestError",
            "Insufficient capacity on cluster",
            errors.InsufficientCapacity,
        ),
        (422, "ValidationFailedError", "exceeds available Capacity", errors.InsufficientCapacity),
        (500, "DatabaseError", "db broke", errors.InternalError),
        (502, "", "bad gateway", errors.InternalError),
        (418, "", "teapot", errors.InvalidRequest),
    ],
)
def test_error_table(status: int, name: str, message: str, cls: type[errors.EdfError]) -> None:
    fake = FakeSession().on("GET", PATH, edf_error(status, name, message))
    with pytest.raises(errors.EdfError) as info:
        make_client(fake).get_app_instance("x")
    err = info.value
    assert type(err) is cls
    assert (err.status, err.name, err.message, err.method, err.path) == (
        status,
        name,
        message,
        "GET",
        PATH,
    )
    assert str(status) in str(err) and PATH in str(err) and message in str(err)


def test_capacity_is_an_invalid_request() -> None:
    assert issubclass(errors.InsufficientCapacity, errors.InvalidRequest)
    assert issubclass(errors.ValidationFailed, errors.InvalidRequest)


def test_name_decides_when_status_is_unlisted() -> None:
    assert errors.error_class(499, "NotFoundError") is errors.NotFound
    assert errors.error_class(None, "ConflictError") is errors.Conflict
    assert errors.error_class(None) is errors.EdfError


def test_errors_list_is_part_of_message() -> None:
    body = {
        "name": "ValidationFailedError",
        "code": 1,
        "http": 422,
        "message": "invalid body",
        "errors": ["name: pattern", "size: too big"],
        "api_req_id": "r-9",
    }
    fake = FakeSession().on("GET", PATH, FakeResponse(422, body))
    with pytest.raises(errors.ValidationFailed) as info:
        make_client(fake).get_app_instance("x")
    assert info.value.message == "invalid body (name: pattern; size: too big)"
    assert info.value.request_id == "r-9"


def test_non_json_error_body() -> None:
    fake = FakeSession().on("GET", PATH, FakeResponse(404, b"<html>Not Found</html>"))
    with pytest.raises(errors.NotFound) as info:
        make_client(fake).get_app_instance("x")
    assert info.value.message == "<html>Not Found</html>"
    assert info.value.name == ""


def test_empty_error_body() -> None:
    fake = FakeSession().on("GET", PATH, FakeResponse(403))
    with pytest.raises(errors.PermissionDenied, match="HTTP 403"):
        make_client(fake).get_app_instance("x")


def test_repr_names_fields() -> None:
    err = errors.NotFound("gone", status=404, name="NotFoundError", method="GET", path="/p")
    assert repr(err) == (
        "NotFound(status=404, name='NotFoundError', method='GET', path='/p', message='gone')"
    )
