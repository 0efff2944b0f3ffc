"""Two datera backends on one cluster, each in a tenant of its own (the rule of
``store.sharing_backend``: one app instance per image and tenant): an import into both, and
``copy-image`` from one to the other (the store's ``get`` of one, ``add`` of the other)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from oslo_utils import units

from datera_glance.simulator import Simulator
from demo.glance_client import GlanceClient
from demo.glance_env import GlanceApi, datera_store_options
from tests.plugins.glance import E2E_INITIATOR, Images, listen_port, payload, wait_until
from tests.plugins.glance_features import Expected, TwoStoreApis, cluster_bytes, wait_imported

pytestmark = [pytest.mark.e2e, pytest.mark.root]

LOG = logging.getLogger(__name__)
TENANTS = {"datera1": "/root/glance_one", "datera2": "/root/glance_two"}


@pytest.fixture(scope="module")
def glance_api(two_store_apis: TwoStoreApis) -> Iterator[GlanceApi]:
    """Overrides the plugin's glance-api for this module (``glance``, ``images`` use it):
    ``datera1`` and ``datera2`` on the session's cluster, venv and PostgreSQL."""
    session = two_store_apis
    e2e_cluster = session.cluster

    def options(backend: str) -> dict[str, object]:
        return datera_store_options(
            e2e_cluster.host, e2e_cluster.port, username="admin", password="password",
            initiator_name=E2E_INITIATOR, datera_tenant_id=TENANTS[backend],
        )  # fmt: skip

    api = GlanceApi(
        session.venv,
        session.tmp.mktemp("e2e-two-datera"),
        backend="datera1",
        store_options=options("datera1"),
        extra_backends={"datera2": ("datera", options("datera2"))},
        database_url=session.postgres.url,
        port=listen_port(),
        import_methods=("glance-direct", "copy-image"),
        show_locations=True,
        log=LOG.warning,
    )
    with api:
        yield api


def app_instances(cluster: Simulator, image_id: str) -> dict[str, dict[str, Any]]:
    """The image's app instances by tenant."""
    return {
        ai["tenant"]: ai
        for ai in cluster.state()["app_instances"]
        if ai["name"] == f"OS-IMAGE-{image_id}"
    }


def assert_in(cluster: Simulator, image_id: str, expected: Expected, tenants: set[str]) -> None:
    found = app_instances(cluster, image_id)
    assert set(found) == tenants, found
    for ai in found.values():
        assert ai["metadata"]["checksum"] == expected.md5
        assert cluster_bytes(ai, len(expected.data)) == expected.data


def test_import_into_both_and_copy_between(
    glance: GlanceClient, e2e_cluster: Simulator, images: Images
) -> None:
    data = payload(5 * units.Mi + 7, seed=2430)
    expected = Expected(data)
    both_id = images.create("two-datera")
    assert glance.upload(both_id, data, size=len(data), target="stage").status == 204
    assert glance.import_image(both_id, "glance-direct", all_stores=True).status == 202
    image = wait_imported(glance, both_id)
    assert (image["status"], image["checksum"]) == ("active", expected.md5), image
    assert set(image["stores"].split(",")) == {"datera1", "datera2"}
    assert_in(e2e_cluster, both_id, expected, set(TENANTS.values()))

    copy_id = images.create("two-datera-copy")
    assert glance.upload(copy_id, data, size=len(data)).status == 204  # datera1 (the default)
    assert_in(e2e_cluster, copy_id, expected, {TENANTS["datera1"]})
    assert glance.import_image(copy_id, "copy-image", stores=["datera2"]).status == 202
    image = wait_imported(glance, copy_id)
    assert set(image["stores"].split(",")) == {"datera1", "datera2"}, image
    assert_in(e2e_cluster, copy_id, expected, set(TENANTS.values()))
    assert glance.request("DELETE", f"/v2/stores/datera1/{copy_id}").status == 204
    wait_until(lambda: set(app_instances(e2e_cluster, copy_id)) == {TENANTS["datera2"]},
               what="datera1's copy to go")  # fmt: skip
    assert glance.download_bytes(copy_id) == data

    for image_id in (both_id, copy_id):
        assert glance.delete_image(image_id) == 204
        assert app_instances(e2e_cluster, image_id) == {}
