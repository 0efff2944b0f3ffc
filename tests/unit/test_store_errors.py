"""Errors mean what glance thinks they mean (issue 11, item 4), through glance_store's API.

- glance reads ``NotFound`` from add as "the image was deleted during the upload": it deletes
  the image record and answers 410 (glance/api/v2/image_data.py). An EDF 404 during add is a
  ``BackendException``, and the app instance is rolled back.
- os-brick and rootwrap failures are ``AttachError`` in the attacher, ``BackendException`` for
  glance, never their own types (a 500 with a traceback).
- glance answers 409 to ``InUseByStore`` on delete (glance/api/v2/images.py): a delete while
  this host reads the image must not cut the reader off.
- glance_store's ``utils.get_hasher`` raises for an unsupported algorithm: before the app
  instance exists, or it leaks.
- the iterator from get may be closed before its first chunk (glance's notifier wraps and may
  drop it): the device is released then, not at garbage collection.
"""

from __future__ import annotations

import io
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from glance_store import exceptions, location
from glance_store import multi_backend as multi_api
from os_brick import exception as brick_exception
from oslo_concurrency import processutils
from oslo_config import cfg
from oslo_utils import units

from datera_glance.simulator import Simulator
from datera_glance.store import Store, StoreLocation
from tests.plugins.store import Overrides, StoreFactory, close_clients, datera_options


@pytest.fixture
def api(simulator: Simulator, global_conf: Overrides, tmp_path: Path) -> Iterator[Store]:
    """One ``datera1`` backend configured by glance_store's ``create_multi_stores``."""
    conf = cfg.CONF
    global_conf.config(enabled_backends={"datera1": "datera"})
    multi_api.register_store_opts(conf)
    for name, value in datera_options(simulator, str(tmp_path / "locks")).items():
        global_conf.config(group="datera1", **{name: value})
    global_conf.config(group="glance_store", default_backend="datera1")
    multi_api.create_multi_stores(conf)
    store = multi_api.get_store_from_store_identifier("datera1")
    assert isinstance(store, Store)
    yield store
    close_clients([store])


def add(data: bytes, hashing_algo: str = "sha256") -> str:
    uri: str = multi_api.add_with_multihash(
        cfg.CONF, str(uuid.uuid4()), io.BytesIO(data), len(data), "datera1", hashing_algo
    )[0]
    return uri


def records(store: Store) -> list[Path]:
    return sorted(Path(store.settings.lock_path).glob("datera-glance-attach-*.json"))


@pytest.mark.parametrize(
    ("method", "path", "skip"),
    [
        ("PUT", r"^/app_instances/[^/]+/metadata$", 0),  # the last step of add
        # attach reads the app instance (after the leftover check's GET of the same route)
        ("GET", r"^/app_instances/[^/]+$", 1),
    ],
)
def test_edf_404_during_add_is_a_backend_error_and_rolls_back(
    simulator: Simulator, api: Store, method: str, path: str, skip: int
) -> None:
    simulator.add_fault(method, path, status=404, name="NotFoundError", skip=skip)
    with pytest.raises(exceptions.BackendException) as info:
        add(os.urandom(units.Mi))
    assert not isinstance(info.value, exceptions.NotFound)
    assert simulator.state()["app_instances"] == []
    assert records(api) == []


class FailingConnector:
    """An os-brick connector whose calls fail the way os-brick's do."""

    def __init__(self, error: BaseException) -> None:
        self.error = error

    def get_connector_properties(self, root_helper: str, *a: Any, **kw: Any) -> dict[str, Any]:
        return {}

    def connect_volume(self, props: dict[str, Any]) -> dict[str, Any]:
        raise self.error

    def disconnect_volume(self, *a: Any, **kw: Any) -> None:
        raise self.error


@pytest.mark.parametrize(
    "error",
    [
        processutils.ProcessExecutionError(stderr="iscsiadm: login failed", exit_code=24),
        brick_exception.VolumeDeviceNotFound(device="/dev/sdz"),
        OSError(13, "Permission denied"),
    ],
    ids=["rootwrap", "os-brick", "oserror"],
)
def test_attach_failures_are_backend_errors(
    simulator: Simulator, store_factory: StoreFactory, error: BaseException
) -> None:
    store = store_factory(simulator, connector_factory=lambda *_: FailingConnector(error))
    with pytest.raises(exceptions.BackendException, match="connecting app instance"):
        store.add(str(uuid.uuid4()), io.BytesIO(b"x" * 4096), 4096, "sha256")
    assert simulator.state()["app_instances"] == []


def test_unusable_hashing_algo_leaks_nothing(simulator: Simulator, api: Store) -> None:
    # glance_store's own check (hashlib.algorithms_available) lets shake_128 through, whose
    # hexdigest() needs a length; Store.add called directly gets any name.
    with pytest.raises(exceptions.UnknownHashingAlgo):
        add(b"x" * 4096, hashing_algo="shake_128")
    with pytest.raises(exceptions.UnknownHashingAlgo):
        api.add(str(uuid.uuid4()), io.BytesIO(b"x" * 4096), 4096, "no-such-hash")
    assert simulator.state()["app_instances"] == []


def test_delete_while_this_host_reads_is_refused(simulator: Simulator, api: Store) -> None:
    data = os.urandom(3 * api.READ_CHUNKSIZE + 5)
    uri = add(data)
    reader, size = multi_api.get(uri, "datera1")
    assert size == len(data)
    first = next(reader)
    with pytest.raises(exceptions.InUseByStore):
        multi_api.delete(uri, "datera1")
    assert len(simulator.state()["app_instances"]) == 1
    assert first + b"".join(reader) == data  # the reader got every byte
    assert records(api) == []
    multi_api.delete(uri, "datera1")
    assert simulator.state()["app_instances"] == []


def test_download_closed_before_its_first_chunk_detaches_at_once(
    simulator: Simulator, api: Store
) -> None:
    uri = add(os.urandom(2 * api.READ_CHUNKSIZE))
    loc = location.Location("datera", StoreLocation, api.conf, uri=uri, backend="datera1")
    reader, _size = api.get(loc)
    assert len(records(api)) == 1  # attached: the first chunk is read already
    reader.close()
    assert records(api) == []  # while ``reader`` is still referenced: not left to the GC
    multi_api.delete(uri, "datera1")  # and nothing holds it any more
    assert simulator.state()["app_instances"] == []
