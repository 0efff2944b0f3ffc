"""Through the real glance-api: an upload of unknown size ends on the smallest volume, and
back-to-back reads share one lingering attachment that delete, shutdown and a crash end.

Why the volume must be the image's size in whole GiB and no more (EDF cannot shrink; Datera's
Cinder driver clones and then sets the requested size): tests/integration/test_unknown_size.py.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from oslo_utils import units

from datera_glance.simulator import Simulator
from demo.glance_client import GlanceClient
from demo.glance_env import GlanceApi
from tests.e2e.test_glance_api import assert_stored
from tests.plugins.glance import (
    Images,
    app_instance,
    attach_users,
    crashed,
    digests,
    finished_requests,
    pattern_stream,
    payload,
    started,
    stopped,
    wait_until,
)

pytestmark = [pytest.mark.e2e, pytest.mark.root]


def records(api: GlanceApi, image_id: str) -> list[dict[str, Any]]:
    """This host's attach records of an image (datera_glance.attach, under lock_path)."""
    return [
        json.loads(p.read_text())
        for p in api.lock_dir.glob(f"datera-glance-attach-*-{image_id}.json")
    ]


@pytest.mark.slow
def test_chunked_upload_of_2_5_gib_ends_on_a_3_gib_volume(
    glance: GlanceClient, e2e_cluster: Simulator, images: Images
) -> None:
    size = 2 * units.Gi + units.Gi // 2
    md5, sha, _ = digests(pattern_stream(size, seed=25))
    image_id = images.create("chunked-2.5g")
    reply = glance.upload(image_id, pattern_stream(size, seed=25), size=None)
    assert reply.status == 204, reply.text
    ai = assert_stored(glance, e2e_cluster, image_id, md5, sha, size)
    assert ai["size_gib"] == 3  # 1 -> 2 -> 3 GiB; the doubling step ended on 4
    assert digests(glance.download(image_id)) == (md5, sha, size)


def ranged_reads(glance: GlanceClient, image_id: str, data: bytes, count: int) -> None:
    for i in range(count):
        start = i * units.Mi
        got = glance.download_bytes(image_id, range_header=f"bytes={start}-{start + units.Mi - 1}")
        assert got == data[start : start + units.Mi]


def test_back_to_back_reads_share_a_lingering_attachment_until_delete(
    glance: GlanceClient, glance_api: GlanceApi, e2e_cluster: Simulator, images: Images
) -> None:
    data = payload(24 * units.Mi, seed=26)
    image_id = images.create("linger")
    assert glance.upload(image_id, data, size=len(data)).status == 204
    assert records(glance_api, image_id) == []  # an upload does not linger
    ranged_reads(glance, image_id, data, 20)
    # uwsgi closes the response (the store releases the attachment) just after the last byte
    wait_until(lambda: not attach_users(glance_api, image_id), what="the last reader to go")
    [record] = records(glance_api, image_id)  # both workers read it, one attachment
    assert record["users"] == [] and record["linger"]["pid"] in glance_api.pids()
    assert glance.delete_image(image_id) == 204
    assert records(glance_api, image_id) == []  # detached before the app instance went
    assert app_instance(e2e_cluster, image_id) is None


def test_shutdown_ends_lingers_and_a_restart_reclaims_what_a_crash_left(
    glance: GlanceClient, glance_api: GlanceApi, e2e_cluster: Simulator, images: Images
) -> None:
    data = payload(8 * units.Mi, seed=27)
    image_id = images.create("linger-stop")
    assert glance.upload(image_id, data, size=len(data)).status == 204
    ranged_reads(glance, image_id, data, 4)
    wait_until(lambda: not attach_users(glance_api, image_id), what="the last reader to go")
    assert records(glance_api, image_id)
    # uwsgi runs no exit hook in a worker still busy with a request (uwsgi_python_atexit in
    # uwsgi's python plugin), and the last reader releases before uwsgi has finished with it.
    wait_until(
        lambda: finished_requests(glance_api, f"/v2/images/{image_id}/file") == 4,
        what="uwsgi to finish the reads",
    )
    stopped(glance_api)  # SIGTERM: uwsgi stops its workers, whose exit hook detaches
    assert records(glance_api, image_id) == []
    started(glance_api)

    ranged_reads(glance, image_id, data, 4)
    wait_until(lambda: not attach_users(glance_api, image_id), what="the last reader to go")
    [record] = records(glance_api, image_id)
    crashed(glance_api)  # SIGKILL to the whole service: no exit hook
    assert records(glance_api, image_id) == [record]  # left behind ...
    started(glance_api)  # ... until the next start reclaims it (each worker, as it loads)
    wait_until(
        lambda: records(glance_api, image_id) == [],
        what="the reclaim of stale attachments at start",
        explain=lambda: f"records {records(glance_api, image_id)}",
    )
    assert attach_users(glance_api, image_id) == []
    assert glance.download_bytes(image_id) == data
