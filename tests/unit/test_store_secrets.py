"""No password, session key or CHAP secret in any log record, at DEBUG, across add, get and
delete and their failure paths (issue 11, item 5).

Every record of every logger is kept (the message with its arguments, the formatted
exception and stack) and searched, and so is every exception the store raises. The iSCSI
path runs with a fake connector on files (no SCSI here), so CHAP secrets are really set on
the simulator's targets and handed to os-brick.
"""

from __future__ import annotations

import io
import json
import logging
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from glance_store import exceptions, location
from oslo_concurrency import processutils
from oslo_utils import units

from datera_glance.attach import chap_credentials
from datera_glance.edf import ClientConfig, EdfClient
from datera_glance.simulator import Simulator
from datera_glance.store import Store, StoreLocation
from tests.plugins.edf_fakes import FakeRaw
from tests.plugins.store import StoreFactory

PASSWORD = "Zq9-cluster-Pw-7731"
CHAP_KEY = "u7Rt2-chap-key-Kd91x"


class KeyTap(requests.Session):
    """A real HTTP session that remembers the session keys the cluster hands out."""

    keys: list[str] = []

    def request(self, method: str | bytes, url: str | bytes, *a: Any, **kw: Any) -> Any:
        response = super().request(method, url, *a, **kw)
        if str(url).endswith("/login") and response.status_code == 200:
            body = response.content  # read here: the transport reads it again from raw
            KeyTap.keys.append(json.loads(body)["key"])
            response.raw = FakeRaw(body)
        return response


class FileIscsi:
    """An os-brick iSCSI connector on files: one file per target IQN. Fails with what
    iscsiadm would print (the secret in the command) when ``fail`` is set."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.fail = False
        self.secrets: list[str] = []

    def get_connector_properties(self, root_helper: str, *a: Any, **kw: Any) -> dict[str, Any]:
        return {"initiator": "iqn.2026-11.org.datera-glance:secrets-host"}

    def connect_volume(self, props: dict[str, Any]) -> dict[str, Any]:
        self.secrets.append(props["auth_password"])
        if self.fail:
            raise processutils.ProcessExecutionError(
                cmd="iscsiadm -m node -n node.session.auth.password -v " + props["auth_password"],
                exit_code=24,
            )
        path = self.root / props["target_iqn"].replace(":", "_")
        if not path.exists():
            path.touch()
            os.truncate(path, units.Gi)  # a regular file's size is its "device size"
        return {"type": "block", "path": str(path)}

    def disconnect_volume(self, *a: Any, **kw: Any) -> None:
        pass


class Everything(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.texts: list[str] = []
        self.formatter = logging.Formatter()

    def emit(self, record: logging.LogRecord) -> None:
        parts = [record.getMessage(), repr(record.args), record.stack_info or ""]
        if record.exc_info:
            parts.append(logging.Formatter().formatException(record.exc_info))
        self.texts.append("\n".join(parts))


@pytest.fixture
def everything() -> Iterator[Everything]:
    handler = Everything()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


def test_no_secret_in_any_record_or_error(
    simulator_factory: Any, store_factory: StoreFactory, tmp_path: Path, everything: Everything
) -> None:
    sim: Simulator = simulator_factory(password=PASSWORD)
    iscsi = FileIscsi(tmp_path)
    raised: list[str] = []

    def make(**options: Any) -> Store:
        return store_factory(
            sim,
            connector="iscsi",
            use_chap=True,
            chap_key=CHAP_KEY,
            retry_deadline=1.0,
            connector_factory=lambda *_: iscsi,
            client_factory=lambda config: EdfClient(config, session=KeyTap()),
            **{"san_password": PASSWORD, **options},
        )

    def expect_failure(kind: type[BaseException], store: Store, data: bytes) -> None:
        with pytest.raises(kind) as info:
            store.add(str(uuid.uuid4()), io.BytesIO(data), len(data), "sha512")
        raised.append(f"{info.value!r} {info.value.__cause__!r}")

    store = make()
    data = os.urandom(units.Mi + 3)
    image_ids = [str(uuid.uuid4()) for _ in range(2)]
    for image_id in image_ids:
        uri = store.add(image_id, io.BytesIO(data), len(data), "sha512")[0]
        loc = location.Location("datera", StoreLocation, store.conf, uri=uri, backend="datera1")
        assert b"".join(store.get(loc)[0]) == data
        assert b"".join(store.get(loc, offset=10, chunk_size=100)[0]) == data[10:110]
        sim.expire_sessions()  # the next call logs in again
        store.delete(loc)
    # failure paths: a 503 burst survived, a dropped connection, a 404, os-brick failing,
    # a refused login
    sim.add_fault("GET", "^/system$", status=503, count=2)
    sim.add_fault("PUT", r"^/app_instances/[^/]+/metadata$", drop=True, count=None)
    expect_failure(exceptions.RemoteServiceUnavailable, store, data)
    sim.clear_faults()
    sim.add_fault("PUT", r"^/app_instances/[^/]+/metadata$", status=404, name="NotFoundError")
    expect_failure(exceptions.BackendException, store, data)
    iscsi.fail = True
    expect_failure(exceptions.BackendException, store, data)
    iscsi.fail = False
    wrong = make(san_password="Wrong-Pw-55321")
    expect_failure(exceptions.BackendException, wrong, data)
    assert sim.state()["app_instances"] == []

    chap = {chap_credentials(CHAP_KEY.encode(), i)[1] for i in image_ids}
    secrets = {PASSWORD, CHAP_KEY, "Wrong-Pw-55321", *KeyTap.keys, *chap, *iscsi.secrets}
    assert chap <= set(iscsi.secrets) and len(KeyTap.keys) >= 3  # they were all used
    assert len(everything.texts) > 50  # DEBUG records were captured
    leaks = [
        (secret, text) for text in everything.texts + raised for secret in secrets if secret in text
    ]
    assert not leaks, leaks[:3]


def test_client_config_repr_hides_the_password() -> None:
    assert PASSWORD not in repr(ClientConfig(host="10.0.0.1", password=PASSWORD))
