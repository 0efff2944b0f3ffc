"""glance 33's import plugins, legacy tasks and image cache with the datera backend: one
glance-api (``datera1:datera``, with ``file1:file`` beside it) for the module, with
``image_import_plugins = [image_conversion, inject_image_metadata]`` (output raw) and the
``cachemanagement`` pipeline.

How glance drives the store: the conversion plugin runs ``qemu-img`` (through
``[wsgi] python_interpreter`` -m oslo_concurrency.prlimit) on the staged file and the store
``add``s the converted file (glance/async_/flows/plugins/image_conversion.py); metadata
injection touches no store (plugins/inject_image_metadata.py); a legacy ``POST /v2/tasks``
import writes to ``os_glance_tasks_store``, runs ``qemu-img info`` (oslo.concurrency's prlimit
with ``sys.executable``: uwsgi's ``py-sys-executable``) and ``add``s to the default store
(glance/async_/flows/base_import.py); the image cache tees a download from the store's ``get``
and serves later ones without it (glance/api/middleware/cache.py, api/v2/cached_images.py).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from oslo_utils import units

from datera_glance.simulator import Simulator
from demo.glance_client import GlanceClient
from demo.glance_env import GlanceApi
from tests.plugins.glance import Images, app_instance, payload, wait_until
from tests.plugins.glance_features import (
    Expected,
    SourceServer,
    TwoStoreApis,
    assert_on_cluster,
    assert_stored,
    cluster_lookups,
    ensure_qemu_img,
    wait_imported,
)

pytestmark = [pytest.mark.e2e, pytest.mark.root]


@pytest.fixture(scope="module")
def glance_api(two_store_apis: TwoStoreApis, source_server: SourceServer) -> Iterator[GlanceApi]:
    """Overrides the plugin's glance-api for this module (``glance``, ``images`` use it)."""
    ensure_qemu_img()
    filtering = {"allowed_hosts": "[127.0.0.1]", "allowed_ports": f"[{source_server.port}]"}
    inject = {"inject": "datera_injected:yes", "ignore_user_roles": ""}
    with two_store_apis.started(
        "e2e-plugins",
        image_cache=True,
        extra_config={
            "image_import_opts": {
                "image_import_plugins": "[image_conversion, inject_image_metadata]"
            },
            "image_conversion": {"output_format": "raw"},
            "inject_metadata_properties": inject,
            "import_filtering_opts": filtering,
        },
    ) as api:
        yield api


def qemu_img(*args: str | Path) -> str:
    return subprocess.run(["qemu-img", *map(str, args)], capture_output=True, text=True,
                          check=True, timeout=300).stdout  # fmt: skip


def import_qcow2(glance: GlanceClient, images: Images, name: str, qcow2: Path) -> str:
    image_id = images.create(name, disk_format="qcow2")
    with qcow2.open("rb") as f:
        reply = glance.upload(image_id, f, size=qcow2.stat().st_size, target="stage")
    assert reply.status == 204, reply.text
    assert glance.import_image(image_id, "glance-direct").status == 202
    wait_imported(glance, image_id, timeout=300)
    return image_id


def test_qcow2_converted_to_raw_with_metadata_injected(
    glance: GlanceClient, e2e_cluster: Simulator, images: Images, tmp_path: Path
) -> None:
    """A qcow2 upload lands on datera as raw (what Cinder's fast clone needs): glance's
    checksum, hash, size and virtual_size are the raw image's, and so are the volume's bytes;
    the injected property is on the image."""
    raw = payload(64 * units.Mi, seed=2420)
    (tmp_path / "disk.raw").write_bytes(raw)
    qemu_img("convert", "-f", "raw", "-O", "qcow2", tmp_path / "disk.raw", tmp_path / "disk.qcow2")
    image_id = import_qcow2(glance, images, "qcow2", tmp_path / "disk.qcow2")
    image = assert_stored(glance, e2e_cluster, image_id, Expected(raw))
    assert (image["disk_format"], image["virtual_size"]) == ("raw", len(raw))
    assert image["datera_injected"] == "yes"


@pytest.mark.slow
def test_large_sparse_qcow2_becomes_a_3_gib_volume(
    glance: GlanceClient, e2e_cluster: Simulator, images: Images, tmp_path: Path
) -> None:
    """2 GiB + 5 MiB virtual, a few MiB written: converted, it is a 2 GiB + 5 MiB raw image
    in a 3 GiB volume, with the md5 of the raw source."""
    size = 2 * units.Gi + 5 * units.Mi
    raw_path = tmp_path / "sparse.raw"
    marks = {at: payload(units.Mi, seed) for seed, at in enumerate((0, units.Gi, size - units.Mi))}
    with raw_path.open("wb") as f:
        f.truncate(size)
        for offset, data in marks.items():
            f.seek(offset)
            f.write(data)
    md5, sha512 = hashlib.md5(), hashlib.sha512()
    with raw_path.open("rb") as f:
        while block := f.read(16 * units.Mi):
            md5.update(block)
            sha512.update(block)
    qcow2 = tmp_path / "sparse.qcow2"
    qemu_img("convert", "-f", "raw", "-O", "qcow2", raw_path, qcow2)
    raw_path.unlink()
    image_id = import_qcow2(glance, images, "sparse-qcow2", qcow2)
    image = glance.get_image(image_id)
    assert (image["status"], image["disk_format"]) == ("active", "raw"), image
    assert (image["size"], image["virtual_size"]) == (size, size)
    assert (image["checksum"], image["os_hash_value"]) == (md5.hexdigest(), sha512.hexdigest())
    ai = app_instance(e2e_cluster, image_id)
    assert ai is not None
    assert (ai["size_gib"], int(ai["metadata"]["length"])) == (3, size)
    assert ai["metadata"]["checksum"] == md5.hexdigest()
    with open(ai["file"], "rb") as f:
        for offset, data in marks.items():
            f.seek(offset)
            assert f.read(len(data)) == data


def test_legacy_task_import(
    glance: GlanceClient,
    e2e_cluster: Simulator,
    images: Images,
    source_server: SourceServer,
) -> None:
    data = payload(5 * units.Mi + 1, seed=2421)
    url = source_server.url("length", "legacy-task", data)
    properties = {"name": "legacy", "disk_format": "raw", "container_format": "bare"}
    task_input = {"import_from": url, "import_from_format": "raw", "image_properties": properties}
    body = {"type": "import", "input": task_input}
    reply = glance.request("POST", "/v2/tasks", body)
    assert reply.status == 201, reply.text
    task_id = json.loads(reply.text)["id"]

    def task() -> dict:
        found: dict = json.loads(glance.request("GET", f"/v2/tasks/{task_id}").text)
        return found

    wait_until(lambda: task()["status"] in ("success", "failure"), 120, what="the task",
               explain=lambda: str(task()))  # fmt: skip
    assert task()["status"] == "success", task()
    image_id = task()["result"]["image_id"]
    images.ids.append(image_id)
    assert_stored(glance, e2e_cluster, image_id, Expected(data))


def cache_listing(glance: GlanceClient) -> tuple[list[str], list[str]]:
    listing = json.loads(glance.request("GET", "/v2/cache").text)
    return [c["image_id"] for c in listing["cached_images"]], listing["queued_images"]


def test_image_cache(glance: GlanceClient, e2e_cluster: Simulator, images: Images) -> None:
    """The first download reads the cluster and fills the cache; later ones do not touch the
    cluster. Deleted from the cache, queued again with ``PUT /v2/cache/{id}``, it is cached
    from the store's ``get``."""
    data = payload(8 * units.Mi + 7, seed=2422)
    image_id = images.create("cached")
    assert glance.upload(image_id, data, size=len(data)).status == 204
    with cluster_lookups(e2e_cluster, image_id) as first:
        assert glance.download_bytes(image_id) == data
    assert first[0] > 0
    wait_until(lambda: image_id in cache_listing(glance)[0], what="the image to be cached")
    with cluster_lookups(e2e_cluster, image_id) as cached:
        assert glance.download_bytes(image_id) == data
    assert cached == [0]

    assert glance.request("DELETE", f"/v2/cache/{image_id}").status == 204
    assert image_id not in cache_listing(glance)[0]
    with cluster_lookups(e2e_cluster, image_id) as queued:
        assert glance.request("PUT", f"/v2/cache/{image_id}").status in (200, 202, 204)
        wait_until(lambda: image_id in cache_listing(glance)[0], what="the prefetch")
    assert queued[0] > 0
    assert image_id not in cache_listing(glance)[1]
    with cluster_lookups(e2e_cluster, image_id) as again:
        assert glance.download_bytes(image_id) == data
    assert again == [0]
    assert_on_cluster(e2e_cluster, image_id, Expected(data))
