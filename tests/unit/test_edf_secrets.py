"""No secret (password, session key, CHAP password) reaches a log line, an error or a repr."""

from __future__ import annotations

import html
import json
import logging
import re
import urllib.parse

import pytest
import requests

from datera_glance.edf import errors
from tests.plugins.edf_fakes import (
    PASSWORD,
    FakeResponse,
    FakeSession,
    ai_json,
    edf_error,
    make_client,
    ok,
)

TOKEN = "k3y-0f-the-sess1on"
CHAP = "chap-pw-123456"


def test_nothing_secret_in_debug_logs_or_errors(caplog: pytest.LogCaptureFixture) -> None:
    ai = ai_json()
    auth = f"/v2.2/app_instances/{ai['id']}/storage_instances/storage-1/auth"
    fake = FakeSession()
    fake.on("PUT", "/v2.2/login", FakeResponse(200, {"key": TOKEN}))
    expired = edf_error(401, "InvalidSessionKeyError", f"key {TOKEN} is not valid")
    fake.on("GET", f"/v2.2/app_instances/{ai['id']}", expired, ok(ai))
    # A server echoing rejected values back in its message must not leak them either.
    echo = edf_error(
        422, "ValidationFailedError", f"target_pswd {CHAP!r} too short; password={PASSWORD}"
    )
    fake.on("PUT", auth, echo)
    fake.on("GET", "/v2.2/system", requests.exceptions.ConnectionError(f"reset {TOKEN}"))
    client = make_client(fake, retry_deadline=1)
    raised: list[errors.EdfError] = []
    with caplog.at_level(logging.DEBUG):
        client.get_app_instance(ai["id"])
        with pytest.raises(errors.ValidationFailed) as info:
            client.set_chap(ai["id"], "chapuser", CHAP)
        raised.append(info.value)
        with pytest.raises(errors.ConnectionFailed) as conn:
            client.system()
        raised.append(conn.value)
        client.close()
    text = caplog.text + "".join(f"{e}{e!r}{e.message}{e.args}" for e in raised) + repr(client)
    for secret in (PASSWORD, TOKEN, CHAP):
        assert secret not in text
    assert "***" in str(raised[0])
    assert TOKEN in [c.headers.get("Auth-Token") for c in fake.calls]  # it was really used


def test_debug_lines_show_method_path_status_time(caplog: pytest.LogCaptureFixture) -> None:
    fake = FakeSession().on("GET", "/v2.2/system", ok({}))
    with caplog.at_level(logging.DEBUG, logger="datera_glance.edf"):
        make_client(fake).system()
    lines = [r.getMessage() for r in caplog.records]
    assert any(re.fullmatch(r"GET /v2\.2/system -> 200 in \d+\.\d{3}s", line) for line in lines)
    assert any(re.fullmatch(r"PUT /v2\.2/login -> 200 in \d+\.\d{3}s", line) for line in lines)


ODD = 'H3ad\\mid\tdle"qu\u00e9-T4il'  # a backslash, a tab, a quote and a non-ASCII letter


def _echoes(secret: str) -> list[str]:
    """How servers and proxies echo a value (without a key that names it a password, which
    ``mask_password`` catches): as sent in JSON (ASCII escapes), as JSON text inside a JSON
    string, as Python's repr, URL-encoded, HTML-escaped."""
    sent = json.dumps(secret)
    return [
        sent,
        json.dumps(sent),
        repr([secret]),
        urllib.parse.urlencode({"value": secret}),
        urllib.parse.quote(secret),
        html.escape(secret),
        json.dumps(secret, ensure_ascii=False),
    ]


@pytest.mark.parametrize("echo", range(7))
def test_an_echo_of_the_password_in_any_encoding_is_scrubbed(
    echo: int, caplog: pytest.LogCaptureFixture
) -> None:
    """Before: only the literal password was replaced, so a password with ``\\`` or a tab came
    back JSON-escaped (``H3ad\\\\mid\\tdle``) in errors and logs. Now every encoding the
    transport produces, and an echo of it, is scrubbed."""
    text = _echoes(ODD)[echo]
    fake = FakeSession()
    fake.on("PUT", "/v2.2/login", edf_error(401, "AuthFailedError", f"refused {text}"))
    fake.on("GET", "/v2.2/system", FakeResponse(502, f"<html>bad gateway {text}</html>".encode()))
    client = make_client(fake, password=ODD)
    with caplog.at_level(logging.DEBUG), pytest.raises(errors.AuthError) as refused:
        client.system()
    fake.on("PUT", "/v2.2/login", FakeResponse(200, {"key": TOKEN}))
    with caplog.at_level(logging.DEBUG), pytest.raises(errors.EdfError) as proxy:
        client.system()
    seen = f"{refused.value}{refused.value!r}{proxy.value}{proxy.value!r}{caplog.text}"
    assert "H3ad" not in seen and "T4il" not in seen, seen
    assert "***" in str(refused.value)
