"""The real glance-api 33, started while the EDF cluster is down (issue 11, item 1).

Before, each uwsgi worker's ``configure_add`` waited for the cluster and then raised
``BadStoreConfiguration``: glance_store cleared WRITE_ACCESS in that worker for good
(glance_store/driver.py), so uploads and deletes failed until a restart. Now glance-api starts
at once, answers 503 while the cluster is away (glance/api/v2/image_data.py and images.py map
glance_store's TimeoutError, which the store's ClusterUnavailable also is), and serves once it
is back, in the same workers.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from oslo_utils import units

from datera_glance.simulator import Simulator
from demo.glance_client import GlanceClient
from demo.glance_env import GlanceVenv, PostgreSQL
from tests.plugins.glance import app_instance, e2e_glance_api, listen_port, payload, wait_until
from tests.plugins.simulator import loop_devices_on

pytestmark = [pytest.mark.e2e, pytest.mark.root]


class Cluster:
    """A simulator on loop media that can go away and come back on the same port and data."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        # Below the ephemeral range: while the cluster is down, no client socket of this
        # machine can be given its port (tests/plugins/glance.py, listen_port).
        self.sim = Simulator(data_dir, media="loop", port=listen_port())
        self.sim.start()
        self.host, self.port = self.sim.host, self.sim.port

    def stop(self) -> None:
        self.sim.stop()

    def start(self) -> None:
        self.sim = Simulator(self.data_dir, media="loop", port=self.port)
        self.sim.start()


@pytest.fixture
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("e2e-outage-edf"))
    try:
        yield c
    finally:
        c.stop()
        left = loop_devices_on(c.data_dir)
        assert not left, f"loop devices left attached: {left}"


@pytest.mark.glance(33)  # glance_store's TimeoutError answered with 503 on upload and delete
def test_glance_api_started_during_an_outage_serves_once_the_cluster_is_back(
    glance_venv: GlanceVenv,
    postgres: PostgreSQL,
    cluster: Cluster,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    cluster.stop()
    base = tmp_path_factory.mktemp("e2e-outage-glance")
    api = e2e_glance_api(
        glance_venv, postgres, base, cluster.host, cluster.port, datera_retry_deadline=2
    )
    started = time.monotonic()
    with api:
        startup = time.monotonic() - started
        glance = GlanceClient(api.url)
        data = payload(3 * units.Mi + 17, seed=11)
        image_id = glance.create_image("outage")["id"]
        reply = glance.upload(image_id, data, size=len(data))
        assert reply.status == 503, reply.text  # retryable, not a 500
        assert glance.get_image(image_id)["status"] == "queued"

        cluster.start()
        # every worker (2) must serve: each decided about its store on its own
        for _ in range(4):
            probe = glance.create_image("probe")["id"]
            assert glance.upload(probe, b"p" * 4096, size=4096).status == 204
            assert glance.delete_image(probe) == 204
        reply = glance.upload(image_id, data, size=len(data))
        assert reply.status == 204, reply.text
        image = glance.get_image(image_id)
        assert image["status"] == "active"
        assert image["checksum"] == hashlib.md5(data).hexdigest()
        assert glance.download_bytes(image_id) == data

        cluster.stop()  # a delete during an outage must not drop the image record
        assert glance.delete_image(image_id) == 503
        assert glance.get_image(image_id)["status"] == "active"
        cluster.start()
        assert glance.delete_image(image_id) == 204
        wait_until(lambda: app_instance(cluster.sim, image_id) is None, what="the app instance")
        assert cluster.sim.state()["app_instances"] == []
    assert startup < 60, f"glance-api took {startup:.0f} s to start with the cluster down"
