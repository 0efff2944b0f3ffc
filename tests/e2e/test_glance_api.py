"""The real glance-api 33 (uwsgi, 2 processes x 4 threads, PostgreSQL) with the datera backend.

Every case checks glance's view (HTTP status, image status, size, checksum, os_hash_value) and
the cluster's (the simulator's app instances, and which devices glance-api holds open).
"""

from __future__ import annotations

import hashlib
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from oslo_utils import units

from datera_glance.simulator import Simulator
from demo.glance_client import GlanceClient
from demo.glance_env import GlanceApi, GlanceVenv, mapped_files
from tests.plugins.glance import (
    Images,
    app_instance,
    attach_users,
    devices_in_use,
    digests,
    pattern_stream,
    payload,
    restarted,
    wait_until,
)

pytestmark = [pytest.mark.e2e, pytest.mark.root]

ODD = 10 * units.Mi + 12345  # not a multiple of any block or buffer size


def assert_stored(
    glance: GlanceClient, cluster: Simulator, image_id: str, md5: str, sha512: str, size: int
) -> dict:
    """glance says active with the right hashes; the cluster has the matching app instance."""
    image = glance.get_image(image_id)
    assert image["status"] == "active"
    assert image["size"] == size
    assert image["checksum"] == md5
    assert image["os_hash_algo"] == "sha512"
    assert image["os_hash_value"] == sha512
    assert image["stores"] == "datera1"
    uris = [loc["url"] for loc in image["locations"]]
    assert uris == [f"datera://{cluster.host}:{cluster.port}/app_instances/{image_id}"]
    ai = app_instance(cluster, image_id)
    assert ai is not None, "no app instance for an active image"
    assert ai["name"] == f"OS-IMAGE-{image_id}"
    assert ai["size_gib"] == max(1, -(-size // units.Gi))
    assert int(ai["metadata"]["length"]) == size
    assert ai["metadata"]["checksum"] == md5
    return ai


def assert_nothing_left(glance: GlanceClient, cluster: Simulator, image_id: str) -> None:
    """The image is not active and the cluster has no app instance for it (cleanup may
    finish just after glance answers, so wait a little)."""
    wait_until(lambda: app_instance(cluster, image_id) is None, what="the app instance to go")
    # glance puts the image back to queued after the store's cleanup, so that may lag too
    wait_until(
        lambda: glance.get_image(image_id)["status"] == "queued", what="the image to be queued"
    )


def test_glance_api_runs_the_compiled_copier(
    glance_venv: GlanceVenv, glance_api: GlanceApi
) -> None:
    assert glance_venv.copier_core() == "compiled"
    assert len(glance_api.pids()) == 1 + glance_api.processes  # master + workers
    assert glance_venv.build_dir is not None
    build = str(glance_venv.build_dir)
    loaded = {f for f in mapped_files(glance_api.pids()) if "_chunkio" in f}
    assert loaded and all(f.startswith(build) and f.endswith(".so") for f in loaded), loaded


def test_upload_with_content_length(
    glance: GlanceClient, e2e_cluster: Simulator, images: Images
) -> None:
    data = payload(ODD, seed=1)
    image_id = images.create("content-length")
    reply = glance.upload(image_id, data, size=len(data))
    assert reply.status == 204, reply.text
    md5, sha = hashlib.md5(data).hexdigest(), hashlib.sha512(data).hexdigest()
    ai = assert_stored(glance, e2e_cluster, image_id, md5, sha, len(data))
    assert ai["admin_state"] == "online"  # stays online for readers on any glance-api host
    assert glance.download_bytes(image_id) == data


@pytest.mark.slow
def test_chunked_upload_of_unknown_size_grows_the_volume(
    glance: GlanceClient, e2e_cluster: Simulator, images: Images
) -> None:
    size = units.Gi + 100 * units.Mi + 4097  # past the first 1 GiB volume: one growth
    md5, sha, _ = digests(pattern_stream(size, seed=2))
    image_id = images.create("chunked")
    reply = glance.upload(image_id, pattern_stream(size, seed=2), size=None)
    assert reply.status == 204, reply.text
    ai = assert_stored(glance, e2e_cluster, image_id, md5, sha, size)
    assert ai["size_gib"] == 2
    assert digests(glance.download(image_id)) == (md5, sha, size)


def test_glanceclient_image_create_file(
    glance_venv: GlanceVenv,
    glance_api: GlanceApi,
    glance: GlanceClient,
    e2e_cluster: Simulator,
    images: Images,
    tmp_path: Path,
) -> None:
    data = payload(20 * units.Mi + 511, seed=3)
    src = tmp_path / "image.raw"
    src.write_bytes(data)
    env = glance_venv.env({"OS_IMAGE_URL": glance_api.url, "OS_AUTH_TOKEN": "no-keystone"})
    glance_cli = str(glance_venv.bin("glance"))
    out = subprocess.run(
        [glance_cli, "image-create", "--name", "glanceclient", "--disk-format", "raw",
         "--container-format", "bare", "--file", str(src)],
        env=env, capture_output=True, text=True, check=True, timeout=300,
    ).stdout  # fmt: skip
    match = re.search(r"^\|\s*id\s*\|\s*([0-9a-f-]{36})\s*\|", out, re.M)
    assert match, out
    image_id = match.group(1)
    images.ids.append(image_id)
    md5, sha = hashlib.md5(data).hexdigest(), hashlib.sha512(data).hexdigest()
    assert_stored(glance, e2e_cluster, image_id, md5, sha, len(data))
    dst = tmp_path / "download.raw"
    subprocess.run(
        [glance_cli, "image-download", "--file", str(dst), image_id],
        env=env, capture_output=True, text=True, check=True, timeout=300,
    )  # fmt: skip
    assert dst.read_bytes() == data


def test_interoperable_import_glance_direct(
    glance: GlanceClient, glance_api: GlanceApi, e2e_cluster: Simulator, images: Images
) -> None:
    data = payload(24 * units.Mi + 3, seed=4)
    image_id = images.create("import")
    reply = glance.upload(image_id, data, size=len(data), target="stage")
    assert reply.status == 204, reply.text
    assert glance.get_image(image_id)["status"] == "uploading"
    assert app_instance(e2e_cluster, image_id) is None  # staged in glance, not yet on EDF
    reply = glance.import_image(image_id, "glance-direct")
    assert reply.status == 202, reply.text
    image = glance.wait_for_status(image_id, ["active", "killed", "queued"], timeout=120)
    assert image["status"] == "active", image
    md5, sha = hashlib.md5(data).hexdigest(), hashlib.sha512(data).hexdigest()
    assert_stored(glance, e2e_cluster, image_id, md5, sha, len(data))
    assert glance.download_bytes(image_id) == data
    staging = glance_api.base_dir / "data" / "staging"
    wait_until(lambda: not any(staging.iterdir()), what="glance to drop the staged data")


def test_range_requests(glance: GlanceClient, e2e_cluster: Simulator, images: Images) -> None:
    data = payload(ODD, seed=5)
    size = len(data)
    image_id = images.create("ranges")
    assert glance.upload(image_id, data, size=size).status == 204
    cases = {
        "bytes=0-0": (0, 1),
        "bytes=1048570-2097159": (1048570, 1048590),
        # across buffers
        f"bytes={4 * units.Mi - 1}-{8 * units.Mi}": (4 * units.Mi - 1, 4 * units.Mi + 2),
        "bytes=-10": (size - 10, 10),  # suffix
        f"bytes=-{size}": (0, size),  # suffix = everything
        "bytes=10000000-": (10000000, size - 10000000),  # open-ended
        f"bytes={size - 1}-{size - 1}": (size - 1, 1),  # the last byte
    }
    for header, (start, length) in cases.items():
        reply = glance.download_reply(image_id, range_header=header)
        assert reply.status == 206, (header, reply.status)
        assert reply.body == data[start : start + length], header
        end = start + length - 1
        assert reply.headers["Content-Range"] == f"bytes {start}-{end}/{size}", header
    assert glance.download_reply(image_id, range_header=f"bytes={size}-").status == 416


def test_delete_removes_the_app_instance(
    glance: GlanceClient, e2e_cluster: Simulator, images: Images
) -> None:
    data = payload(3 * units.Mi, seed=6)
    image_id = images.create("delete")
    assert glance.upload(image_id, data, size=len(data)).status == 204
    ai = app_instance(e2e_cluster, image_id)
    assert ai is not None
    assert Path(ai["file"]).exists()
    assert glance.delete_image(image_id) == 204
    assert app_instance(e2e_cluster, image_id) is None
    assert not Path(ai["file"]).exists()
    assert glance.request("GET", f"/v2/images/{image_id}").status == 404
    assert glance.delete_image(image_id) == 404


def test_concurrent_uploads_and_downloads(
    glance: GlanceClient, glance_api: GlanceApi, e2e_cluster: Simulator, images: Images
) -> None:
    shared = payload(32 * units.Mi + 7, seed=7)
    shared_id = images.create("shared")
    assert glance.upload(shared_id, shared, size=len(shared)).status == 204
    uploads = {
        images.create(f"parallel-{i}"): payload(24 * units.Mi + i, seed=100 + i) for i in range(4)
    }

    def upload(item: tuple[int, str]) -> int:
        i, image_id = item
        data = uploads[image_id]
        return glance.upload(image_id, data, size=len(data) if i % 2 else None).status

    def download(_: int) -> bool:
        return glance.download_bytes(shared_id) == shared

    with ThreadPoolExecutor(max_workers=8) as pool:
        up = pool.map(upload, enumerate(uploads))
        down = pool.map(download, range(4))
        assert list(up) == [204] * 4
        assert list(down) == [True] * 4
    for image_id, data in uploads.items():
        md5, sha = hashlib.md5(data).hexdigest(), hashlib.sha512(data).hexdigest()
        assert_stored(glance, e2e_cluster, image_id, md5, sha, len(data))
    # 8 requests on 2 x 4 threads: both worker processes served them, so attach records and
    # locks were shared across processes.
    ids = {shared_id, *uploads}
    served_by = {
        pid
        for pid, image_id in re.findall(
            r"\[pid: (\d+)\|.*\] (?:PUT|GET) /v2/images/([0-9a-f-]{36})/file",
            glance_api.uwsgi_log.read_text(),
        )
        if image_id in ids
    }
    assert len(served_by) == 2, served_by


def test_client_aborts_upload(glance: GlanceClient, e2e_cluster: Simulator, images: Images) -> None:
    image_id = images.create("abort-upload")
    size = 64 * units.Mi
    sent: list[int] = []
    midway: list[dict | None] = []

    def look(n: int) -> None:  # once 16 MiB are sent, the volume must be being written
        sent.append(n)
        if sum(sent) == 16 * units.Mi:
            midway.append(app_instance(e2e_cluster, image_id))

    reply = glance.upload(
        image_id, pattern_stream(size, seed=8, block=units.Mi), size=size, stop_after=20 * units.Mi,
        progress=look,
    )  # fmt: skip
    assert reply.status == 0  # we hung up
    assert sum(sent) == 20 * units.Mi
    assert midway and midway[0] is not None, "no app instance while the upload was running"
    assert_nothing_left(glance, e2e_cluster, image_id)


def test_client_aborts_download(
    glance: GlanceClient, glance_api: GlanceApi, e2e_cluster: Simulator, images: Images
) -> None:
    data = payload(96 * units.Mi, seed=9)
    image_id = images.create("abort-download")
    assert glance.upload(image_id, data, size=len(data)).status == 204
    stream = glance.download(image_id, piece=units.Mi)
    assert next(stream) == data[: units.Mi]
    # While the download runs, glance-api holds the volume's device and counts its user...
    assert devices_in_use(glance_api, e2e_cluster), "no device open during a download"
    assert len(attach_users(glance_api, image_id)) == 1
    stream.close()  # ...and when the client goes away, it lets go of both
    wait_until(lambda: not devices_in_use(glance_api, e2e_cluster), what="the detach")
    wait_until(lambda: not attach_users(glance_api, image_id), what="the attach count to drop")
    assert glance.download_bytes(image_id) == data  # and the image still reads fine


@pytest.mark.glance(31)  # x-openstack-image-size is read since glance 31 (2025.2)
@pytest.mark.parametrize("declared", ["larger", "smaller"])
def test_wrong_declared_size(
    glance: GlanceClient, e2e_cluster: Simulator, images: Images, declared: str
) -> None:
    data = payload(6 * units.Mi + 1, seed=10)
    lie = len(data) + units.Mi if declared == "larger" else len(data) - units.Mi
    image_id = images.create(f"wrong-size-{declared}")
    # glance takes the size from x-openstack-image-size before Content-Length (glanceclient's
    # way); with a chunked body it is the only size glance sees.
    reply = glance.upload(image_id, data, size=None, headers={"x-openstack-image-size": str(lie)})
    assert 400 <= reply.status < 500, (reply.status, reply.text)
    assert_nothing_left(glance, e2e_cluster, image_id)


def test_upload_when_the_cluster_is_full(
    glance: GlanceClient, e2e_cluster: Simulator, images: Images
) -> None:
    capacity = e2e_cluster.state()["capacity"]
    e2e_cluster.set_capacity(capacity["used"] + units.Gi // 2)  # no room for a 1 GiB volume
    try:
        data = payload(4 * units.Mi, seed=11)
        image_id = images.create("cluster-full")
        reply = glance.upload(image_id, data, size=len(data))
        assert reply.status == 413, (reply.status, reply.text)
        assert_nothing_left(glance, e2e_cluster, image_id)
    finally:
        e2e_cluster.set_capacity(capacity["total"])
    reply = glance.upload(image_id, data, size=len(data))  # room again: the retry works
    assert reply.status == 204, reply.text


def test_images_survive_a_glance_api_restart(
    glance: GlanceClient, glance_api: GlanceApi, e2e_cluster: Simulator, images: Images
) -> None:
    data = payload(12 * units.Mi + 5, seed=12)
    image_id = images.create("restart")
    assert glance.upload(image_id, data, size=len(data)).status == 204
    old_pids = set(glance_api.pids())
    restarted(glance_api)
    assert not old_pids & set(glance_api.pids())
    md5, sha = hashlib.md5(data).hexdigest(), hashlib.sha512(data).hexdigest()
    assert_stored(glance, e2e_cluster, image_id, md5, sha, len(data))
    assert glance.download_bytes(image_id) == data
