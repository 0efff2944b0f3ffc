"""Helpers for the e2e tests of glance's features around a store (tests/e2e/test_feature_*):
a glance-api with two backends (``datera1:datera`` on the session's simulator and
``file1:file``), an HTTP source for web-download and legacy tasks, qemu-img, and the checks of
what glance reports against what the cluster holds.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import json
import logging
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from oslo_utils import units

from datera_glance.simulator import Simulator
from datera_glance.upload_state import MULTIHASH, MULTIHASH_ALGO
from demo.glance_client import GlanceClient
from demo.glance_env import (
    GlanceApi,
    GlanceVenv,
    PostgreSQL,
    datera_store_options,
)
from tests.plugins.glance import E2E_INITIATOR, app_instance, listen_port, wait_until

LOG = logging.getLogger(__name__)

DATERA = "datera1"
FILE = "file1"


# ---- glance-api with datera1 and file1 -----------------------------------------------------


def two_store_glance_api(
    venv: GlanceVenv,
    postgres: PostgreSQL,
    cluster: Simulator,
    base: Path,
    *,
    datera: Mapping[str, object] | None = None,
    file: Mapping[str, object] | None = None,
    import_methods: tuple[str, ...] = ("glance-direct",),
    extra_config: Mapping[str, Mapping[str, object]] | None = None,
    image_cache: bool = False,
    port: int | None = None,
) -> GlanceApi:
    """``enabled_backends = datera1:datera, file1:file`` (default datera1), 2 x 4 workers on
    PostgreSQL, locations shown; not started."""
    datera_options = datera_store_options(
        cluster.host, cluster.port, username="admin", password="password",
        initiator_name=E2E_INITIATOR, datera_default_image_size=1, **(datera or {}),
    )  # fmt: skip
    file_options = {"filesystem_store_datadir": base / "file1", **(file or {})}
    return GlanceApi(
        venv,
        base,
        backend=DATERA,
        store_options=datera_options,
        extra_backends={FILE: ("file", file_options)},
        database_url=postgres.url,
        port=port or listen_port(),
        processes=2,
        threads=4,
        import_methods=import_methods,
        show_locations=True,
        image_cache=image_cache,
        extra_config=extra_config,
        log=LOG.warning,
    )


@dataclass(frozen=True)
class TwoStoreApis:
    """Starts module-scoped glance-apis of ``two_store_glance_api`` on the session's venv,
    PostgreSQL and cluster."""

    venv: GlanceVenv
    postgres: PostgreSQL
    cluster: Simulator
    tmp: pytest.TempPathFactory

    @contextlib.contextmanager
    def started(self, name: str, **options: Any) -> Iterator[GlanceApi]:
        base = self.tmp.mktemp(name)
        with two_store_glance_api(self.venv, self.postgres, self.cluster, base, **options) as api:
            yield api


@pytest.fixture(scope="session")
def two_store_apis(
    glance_venv: GlanceVenv,
    postgres: PostgreSQL,
    e2e_cluster: Simulator,
    tmp_path_factory: pytest.TempPathFactory,
) -> TwoStoreApis:
    return TwoStoreApis(glance_venv, postgres, e2e_cluster, tmp_path_factory)


def file_store_path(api: GlanceApi, image_id: str) -> Path:
    return api.base_dir / "file1" / image_id


# ---- qemu-img --------------------------------------------------------------------------


def ensure_qemu_img() -> str:
    """qemu-img's path, installing Debian's qemu-utils (as root) when it is missing: the
    image_conversion plugin runs it on the glance-api host."""
    found = shutil.which("qemu-img")
    if found:
        return found
    if os.geteuid() != 0:
        pytest.fail("qemu-img is missing (apt-get install qemu-utils, as root)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "-o", "DPkg::Lock::Timeout=600", "install", "-y", "-q", "qemu-utils"]
    if subprocess.run(install, env=env, capture_output=True, check=False).returncode != 0:
        subprocess.run(["apt-get", "-o", "DPkg::Lock::Timeout=600", "update", "-q"],
                       env=env, capture_output=True, check=True)  # fmt: skip
        subprocess.run(install, env=env, capture_output=True, check=True)
    found = shutil.which("qemu-img")
    assert found, "qemu-utils installed but no qemu-img on PATH"
    return found


# ---- an HTTP source (web-download, legacy tasks) -------------------------------------------


class SourceServer:
    """Serves bytes on 127.0.0.1 the three ways web-download meets them:
    ``/length/NAME`` with Content-Length, ``/close/NAME`` without (the body ends when the
    connection closes), ``/chunked/NAME`` chunked."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.port = listen_port()
        files = self.files

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                LOG.debug("source: " + format, *args)

            def do_GET(self) -> None:
                _, mode, name = [*self.path.split("/", 2), "", ""][:3]
                data = files.get(name)
                if data is None or mode not in ("length", "close", "chunked"):
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                if mode == "length":
                    self.send_header("Content-Length", str(len(data)))
                elif mode == "chunked":
                    self.send_header("Transfer-Encoding", "chunked")
                self.send_header("Connection", "close")
                self.end_headers()
                self.close_connection = True
                for start in range(0, len(data), units.Mi):
                    piece = data[start : start + units.Mi]
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece)
                                     if mode == "chunked" else piece)  # fmt: skip
                if mode == "chunked":
                    self.wfile.write(b"0\r\n\r\n")

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def url(self, mode: str, name: str, data: bytes) -> str:
        self.files[name] = data
        return f"http://127.0.0.1:{self.port}/{mode}/{name}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


@pytest.fixture(scope="session")
def source_server() -> Iterator[SourceServer]:
    server = SourceServer()
    try:
        yield server
    finally:
        server.close()


# ---- what the cluster holds -----------------------------------------------------------


@dataclass(frozen=True)
class Expected:
    """An image's bytes as glance must report them, with ``algo`` its os_hash_algo."""

    data: bytes
    algo: str = "sha512"

    @property
    def md5(self) -> str:
        return hashlib.md5(self.data).hexdigest()

    @property
    def hash_value(self) -> str:
        return hashlib.new(self.algo, self.data).hexdigest()


def cluster_bytes(ai: dict[str, Any], size: int) -> bytes:
    """The first ``size`` bytes of an app instance's volume (its backing file)."""
    with open(ai["file"], "rb") as f:
        return f.read(size)


def assert_glance_reports(
    image: dict[str, Any], expected: Expected, stores: set[str], failed: str = ""
) -> None:
    assert image["status"] == "active", image
    assert image["size"] == len(expected.data)
    assert image["checksum"] == expected.md5
    assert image["os_hash_algo"] == expected.algo
    assert image["os_hash_value"] == expected.hash_value
    assert set(filter(None, image.get("stores", "").split(","))) == stores, image.get("stores")
    assert {loc["metadata"].get("store") for loc in image["locations"]} == stores
    assert not image.get("os_glance_importing_to_stores"), image
    assert image.get("os_glance_failed_import", "") == failed, image


def assert_on_cluster(cluster: Simulator, image_id: str, expected: Expected) -> dict[str, Any]:
    """The image's app instance holds its bytes, its length, md5 and multihash."""
    ai = app_instance(cluster, image_id)
    assert ai is not None, f"no app instance for image {image_id}"
    assert ai["name"] == f"OS-IMAGE-{image_id}"
    size = len(expected.data)
    assert ai["size_gib"] == max(1, -(-size // units.Gi))
    assert int(ai["metadata"]["length"]) == size
    assert ai["metadata"]["checksum"] == expected.md5
    assert ai["metadata"][MULTIHASH_ALGO] == expected.algo
    assert ai["metadata"][MULTIHASH] == expected.hash_value
    assert cluster_bytes(ai, size) == expected.data
    return ai


def assert_stored(
    glance: GlanceClient,
    cluster: Simulator,
    image_id: str,
    expected: Expected,
    stores: set[str] = frozenset({DATERA}),  # type: ignore[assignment]
    failed: str = "",
) -> dict[str, Any]:
    """glance's view and the cluster's agree: active, hashes, ``stores``; the app instance
    (when datera1 is among the stores) or none (when it is not); the bytes downloaded."""
    image = glance.get_image(image_id)
    assert_glance_reports(image, expected, set(stores), failed)
    if DATERA in stores:
        assert_on_cluster(cluster, image_id, expected)
    else:
        assert app_instance(cluster, image_id) is None
    assert glance.download_bytes(image_id) == expected.data
    return image


def assert_gone(cluster: Simulator, image_id: str) -> None:
    wait_until(lambda: app_instance(cluster, image_id) is None, what="the app instance to go",
               explain=lambda: str(app_instance(cluster, image_id)))  # fmt: skip


def wait_imported(glance: GlanceClient, image_id: str, timeout: float = 60) -> dict[str, Any]:
    """Wait until no import runs (``os_glance_importing_to_stores`` empty, the image not
    ``importing``/``uploading``); return the image."""

    def done() -> bool:
        image = glance.get_image(image_id)
        return image["status"] not in ("importing", "uploading", "saving") and not image.get(
            "os_glance_importing_to_stores"
        ) and "os_glance_import_task" not in image  # fmt: skip

    wait_until(done, timeout, what=f"image {image_id}'s import to end",
               explain=lambda: str(glance.get_image(image_id)))  # fmt: skip
    return glance.get_image(image_id)


@contextlib.contextmanager
def cluster_lookups(cluster: Simulator, image_id: str) -> Iterator[list[int]]:
    """Counts the EDF requests naming the image's app instance while the block runs (a
    zero-delay fault that lets every request through); the list holds the count at exit.
    The cluster's faults are cleared at exit: the e2e tests inject no others meanwhile."""
    budget = 1_000_000
    path = f"/app_instances/OS-IMAGE-{image_id}"
    cluster.add_fault(None, path, delay=0, count=budget)
    counted: list[int] = []
    try:
        yield counted
    finally:
        left = [f["count"] for f in cluster.faults.to_json() if f["path"] == path]
        cluster.faults.clear()
        counted.append(budget - (left[0] if left else 0))


def wait_task_ended(glance: GlanceClient, image_id: str, timeout: float = 60) -> dict[str, Any]:
    """Wait until the image's latest task (``GET /v2/images/{id}/tasks``) has ended; return it."""

    def latest() -> dict[str, Any] | None:
        reply = glance.request("GET", f"/v2/images/{image_id}/tasks")
        tasks = json.loads(reply.text)["tasks"] if reply.status == 200 else []
        return max(tasks, key=lambda t: t["created_at"]) if tasks else None

    def ended() -> bool:
        task = latest()
        return task is not None and task["status"] in ("success", "failure")

    wait_until(ended, timeout, f"image {image_id}'s task to end", lambda: str(latest()))
    task = latest()
    assert task is not None
    return task
