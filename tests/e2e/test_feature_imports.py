"""glance 33's import methods and multi-store imports on ``datera1:datera, file1:file``, with
``hashing_algorithm = sha256`` and ``max_parallel_stores = 2``: one glance-api for the module.

How glance drives the store (glance/async_/flows/api_image_import.py, parallel_api_image_import.py,
_internal_plugins/{web_download,copy_image,glance_download}.py): every method stages the data in
``os_glance_staging_store`` and then calls the target store's ``add(image_id, data, size,
hashing_algo)``; a failed store with ``all_stores_must_succeed`` reverts the stores already done
with ``delete``. Each case checks glance's report (status, ``stores``, ``os_glance_*``, checksum,
``os_hash_value``) and the cluster (the app instance, its bytes and metadata, nothing left).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from oslo_utils import units

from datera_glance.simulator import Simulator
from demo.glance_client import GlanceClient
from demo.glance_env import GlanceApi
from tests.plugins.glance import Images, app_instance, listen_port, payload
from tests.plugins.glance_features import (
    DATERA,
    FILE,
    Expected,
    SourceServer,
    TwoStoreApis,
    assert_gone,
    assert_stored,
    file_store_path,
    wait_imported,
    wait_task_ended,
)

pytestmark = [pytest.mark.e2e, pytest.mark.root]

SHA256 = "sha256"


@pytest.fixture(scope="module")
def glance_api(two_store_apis: TwoStoreApis, source_server: SourceServer) -> Iterator[GlanceApi]:
    """Overrides the plugin's glance-api for this module (``glance``, ``images`` use it)."""
    port = listen_port()
    # web-download reads the source server; glance-download reads this glance-api itself.
    # Loopback passes glance's filter only when allowed by name.
    filtering = {"allowed_hosts": "[127.0.0.1]", "allowed_ports": f"[{source_server.port}, {port}]"}
    methods = ("glance-direct", "web-download", "copy-image", "glance-download")
    with two_store_apis.started(
        "e2e-imports",
        port=port,
        import_methods=methods,
        extra_config={
            "DEFAULT": {"hashing_algorithm": SHA256},
            "image_import_opts": {"max_parallel_stores": 2},
            "import_filtering_opts": filtering,
        },
    ) as api:
        yield api


def staged_import(glance: GlanceClient, image_id: str, data: bytes, **fields: Any) -> dict:
    """glance-direct: stage the data, import it, wait for the import to end."""
    reply = glance.upload(image_id, data, size=len(data), target="stage")
    assert reply.status == 204, reply.text
    reply = glance.import_image(image_id, "glance-direct", **fields)
    assert reply.status == 202, reply.text
    return wait_imported(glance, image_id)


@pytest.mark.parametrize("mode", ["length", "close", "chunked"])
def test_web_download(
    glance: GlanceClient,
    e2e_cluster: Simulator,
    images: Images,
    source_server: SourceServer,
    mode: str,
) -> None:
    """With Content-Length glance stages and passes its size; without one (end at close, or
    chunked) staging gives the size: the store's ``add`` sees a size either way."""
    data = payload(9 * units.Mi + 77, seed=2400)
    image_id = images.create(f"web-{mode}")
    url = source_server.url(mode, image_id, data)
    reply = glance.import_image(image_id, "web-download", method_fields={"uri": url})
    assert reply.status == 202, reply.text
    wait_imported(glance, image_id)
    assert_stored(glance, e2e_cluster, image_id, Expected(data, SHA256))


def test_copy_image_between_file_and_datera(
    glance: GlanceClient, glance_api: GlanceApi, e2e_cluster: Simulator, images: Images
) -> None:
    """file1 -> datera1 (the store's ``add`` of the file store's ``get``), then the datera copy
    alone is the source: delete it from file1 and copy datera1 -> file1; copying again to a
    store that has it is refused (400) and changes nothing."""
    data = payload(7 * units.Mi + 5, seed=2401)
    expected = Expected(data, SHA256)
    image_id = images.create("copy")
    staged_import(glance, image_id, data, stores=[FILE])
    assert_stored(glance, e2e_cluster, image_id, expected, {FILE})

    assert glance.import_image(image_id, "copy-image", stores=[DATERA]).status == 202
    wait_imported(glance, image_id)
    assert_stored(glance, e2e_cluster, image_id, expected, {FILE, DATERA})

    assert glance.request("DELETE", f"/v2/stores/{FILE}/{image_id}").status == 204
    assert not file_store_path(glance_api, image_id).exists()
    assert_stored(glance, e2e_cluster, image_id, expected, {DATERA})
    assert glance.import_image(image_id, "copy-image", stores=[FILE]).status == 202
    wait_imported(glance, image_id)
    assert_stored(glance, e2e_cluster, image_id, expected, {FILE, DATERA})
    assert file_store_path(glance_api, image_id).read_bytes() == data

    ai_before = app_instance(e2e_cluster, image_id)
    again = glance.import_image(image_id, "copy-image", stores=[DATERA])
    assert again.status == 400, again.text
    assert "already present at store 'datera1'" in again.text
    assert app_instance(e2e_cluster, image_id) == ai_before
    assert_stored(glance, e2e_cluster, image_id, expected, {FILE, DATERA})


def test_glance_download_from_another_region(
    glance: GlanceClient, glance_api: GlanceApi, e2e_cluster: Simulator, images: Images
) -> None:
    """glance-download fetches the image and its metadata from the glance the service catalog
    names for the region (here this same glance-api as "RegionTwo") over HTTP, stages it and
    ``add``s it to datera1."""
    data = payload(5 * units.Mi + 3, seed=2402)
    remote_id = images.create("remote", os_distro="datera-linux")
    staged_import(glance, remote_id, data, stores=[FILE])
    catalog = [{"type": "image", "endpoints": [
        {"region": "RegionTwo", "publicURL": glance_api.url, "interface": "public"}]}]  # fmt: skip
    image_id = images.create("downloaded")
    reply = glance.import_image(
        image_id,
        "glance-download",
        method_fields={"glance_image_id": remote_id, "glance_region": "RegionTwo",
                       "glance_service_interface": "public"},
        headers={"X-Service-Catalog": json.dumps(catalog), "X-Auth-Token": "no-keystone"},
    )  # fmt: skip
    assert reply.status == 202, reply.text
    wait_imported(glance, image_id)
    image = assert_stored(glance, e2e_cluster, image_id, Expected(data, SHA256))
    # glance-download copies the [glance_download_properties] extra_properties (os_distro...)
    assert image["os_distro"] == "datera-linux"


def test_import_to_all_stores_in_parallel(
    glance: GlanceClient, glance_api: GlanceApi, e2e_cluster: Simulator, images: Images
) -> None:
    """``all_stores: true`` with ``max_parallel_stores = 2``: both ``add``s run together."""
    data = payload(16 * units.Mi + 1, seed=2403)
    image_id = images.create("all-stores")
    staged_import(glance, image_id, data, all_stores=True)
    assert_stored(glance, e2e_cluster, image_id, Expected(data, SHA256), {FILE, DATERA})
    assert file_store_path(glance_api, image_id).read_bytes() == data


@pytest.mark.parametrize("must_succeed", [True, False])
def test_import_to_stores_when_datera_is_full(
    glance: GlanceClient,
    glance_api: GlanceApi,
    e2e_cluster: Simulator,
    images: Images,
    must_succeed: bool,
) -> None:
    """datera1 has no room (EDF's 422, the store's ``StorageFull``), file1 has. With
    ``all_stores_must_succeed`` the parallel import aborts and discards file1's finished copy
    (its ``delete``); glance 33 then leaves the image ``importing`` with
    ``os_glance_importing_to_stores`` as it was (parallel_api_image_import.py fails the task
    without resetting them; the import lock is stolen by a later import). Without it the image
    is active in file1 and names datera1 in ``os_glance_failed_import``. Either way nothing is
    left on the cluster, and a retry once there is room imports into datera1."""
    data = payload(3 * units.Mi + 9, seed=2404 + must_succeed)
    image_id = images.create(f"full-{must_succeed}")
    assert glance.upload(image_id, data, size=len(data), target="stage").status == 204
    capacity = e2e_cluster.state()["capacity"]
    e2e_cluster.set_capacity(capacity["used"] + units.Gi // 2)  # no room for a 1 GiB volume
    try:
        reply = glance.import_image(image_id, "glance-direct", stores=[FILE, DATERA],
                                    all_stores_must_succeed=must_succeed)  # fmt: skip
        assert reply.status == 202, reply.text
        task = wait_task_ended(glance, image_id)
    finally:
        e2e_cluster.set_capacity(capacity["total"])
    assert_gone(e2e_cluster, image_id)
    image = glance.get_image(image_id)
    if must_succeed:
        assert task["status"] == "failure", task
        assert (image["status"], image["locations"], image["checksum"]) == ("importing", [], None)
        assert not file_store_path(glance_api, image_id).exists()
        return
    assert task["status"] == "success", task
    assert_stored(glance, e2e_cluster, image_id, Expected(data, SHA256), {FILE}, failed=DATERA)
    # room again: the failed store is imported on its own (a copy to datera1)
    assert glance.import_image(image_id, "copy-image", stores=[DATERA]).status == 202
    wait_imported(glance, image_id)
    assert_stored(glance, e2e_cluster, image_id, Expected(data, SHA256), {FILE, DATERA})


def test_zero_byte_images(
    glance: GlanceClient,
    glance_api: GlanceApi,
    e2e_cluster: Simulator,
    images: Images,
    source_server: SourceServer,
) -> None:
    """A 0-byte image through PUT, glance-direct, web-download, and copied to file1 and back:
    an app instance of the smallest size, length 0, the hashes of no bytes."""
    empty = Expected(b"", SHA256)
    put_id = images.create("empty-put")
    assert glance.upload(put_id, b"", size=0).status == 204
    direct_id = images.create("empty-direct")
    staged_import(glance, direct_id, b"")
    web_id = images.create("empty-web")
    url = source_server.url("length", web_id, b"")
    assert glance.import_image(web_id, "web-download", method_fields={"uri": url}).status == 202
    wait_imported(glance, web_id)
    for image_id in (put_id, direct_id, web_id):
        assert_stored(glance, e2e_cluster, image_id, empty)
    assert glance.import_image(put_id, "copy-image", stores=[FILE]).status == 202
    wait_imported(glance, put_id)
    assert_stored(glance, e2e_cluster, put_id, empty, {FILE, DATERA})
    assert file_store_path(glance_api, put_id).read_bytes() == b""
    copy_id = images.create("empty-copy-to-datera")
    staged_import(glance, copy_id, b"", stores=[FILE])
    assert glance.import_image(copy_id, "copy-image", stores=[DATERA]).status == 202
    wait_imported(glance, copy_id)
    assert_stored(glance, e2e_cluster, copy_id, empty, {FILE, DATERA})


def test_delete_removes_every_store(
    glance: GlanceClient, glance_api: GlanceApi, e2e_cluster: Simulator, images: Images
) -> None:
    data = payload(2 * units.Mi, seed=2406)
    image_id = images.create("delete-both")
    staged_import(glance, image_id, data, all_stores=True)
    assert glance.delete_image(image_id) == 204
    assert app_instance(e2e_cluster, image_id) is None
    assert not Path(file_store_path(glance_api, image_id)).exists()
