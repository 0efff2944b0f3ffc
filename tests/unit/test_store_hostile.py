"""What glance gets from the Store when the cluster answers what EDF never does, and for a
negative image size: the glance_store exception glance 33 handles for it.

- glance 33 (glance/api/v2/image_data.py ``ImageDataController.upload``) answers 400 to
  ``glance_store.Invalid`` after logging its message and putting the image back to
  ``queued``; a plain ``ValueError`` is caught earlier by glance/notifier.py
  (``ImageProxy.set_data``), which answers 400 too but with no store message logged, and
  inside a store a ValueError is as likely a bug as bad input. ``Invalid`` is glance_store's
  exception for a bad argument to ``add``.
- Anything else from ``add`` (``BackendException`` included) is logged there as "Failed to
  upload image data due to internal error", without its message, and answered 500 with the
  image back to ``queued``: right for a broken cluster, which is why the client logs the
  cause (the call and the field) itself, once. Before, a wrong-shaped answer was a
  ``ValueError``/``AttributeError`` from the models: a 400 blaming the user, or a 500 with a
  traceback and no hint of the call.
"""

from __future__ import annotations

import io
import logging
import uuid
from typing import Any

import pytest
import requests
from glance_store import exceptions

from datera_glance.edf import EdfClient
from datera_glance.simulator import Simulator
from tests.plugins.edf_fakes import FakeResponse, ok
from tests.plugins.store import StoreFactory


class Tampering(requests.Session):
    """A real session to the simulator, except that ``GET /system`` gets ``reply``."""

    reply: FakeResponse | None = None

    def request(self, method: str | bytes, url: str | bytes, *a: Any, **kw: Any) -> Any:
        if str(method) == "GET" and str(url).split("?")[0].endswith("/system") and self.reply:
            self.reply.raw.rewind()
            return self.reply
        return super().request(method, url, *a, **kw)


@pytest.mark.parametrize(
    ("reply", "field"),
    [
        pytest.param(ok({"available_capacity": "plenty"}), "system.available_capacity", id="str"),
        pytest.param(ok([{"available_capacity": 1}]), "system should be an object", id="list"),
        pytest.param(FakeResponse(302, b"", {"Location": "/sso"}), "HTTP 302", id="redirect"),
    ],
)
def test_an_unexpected_answer_is_a_backend_exception_logged_once(
    simulator: Simulator,
    store_factory: StoreFactory,
    caplog: pytest.LogCaptureFixture,
    reply: FakeResponse,
    field: str,
) -> None:
    session = Tampering()
    session.reply = reply
    store = store_factory(simulator, client_factory=lambda c: EdfClient(c, session=session))
    with caplog.at_level(logging.ERROR), pytest.raises(exceptions.BackendException) as info:
        store.add(str(uuid.uuid4()), io.BytesIO(b"x" * 4096), 4096, "sha256")
    assert "GET /v2.2/system" in str(info.value) and field in str(info.value)
    logged = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(logged) == 1 and field in logged[0].getMessage()
    assert simulator.state()["app_instances"] == []


def test_a_negative_size_is_invalid_and_touches_nothing(
    simulator: Simulator, store_factory: StoreFactory
) -> None:
    """Before: ``add`` created the app instance and the copier raised a plain ValueError (then
    the rollback deleted it). Now ``Invalid`` before any call to the cluster."""
    store = store_factory(simulator)
    before = simulator.state()
    with pytest.raises(exceptions.Invalid, match="size -1"):
        store.add(str(uuid.uuid4()), io.BytesIO(b"x"), -1, "sha256")
    assert simulator.state()["app_instances"] == before["app_instances"] == []
