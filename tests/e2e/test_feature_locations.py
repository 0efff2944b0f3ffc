"""Deleting from one store, locations, store weights and ``?prefer=`` on
``datera1:datera, file1:file`` (weights 10 and 20): one glance-api for the module.

How glance drives the store: ``DELETE /v2/stores/{store}/{image}`` is the store's ``delete``
(glance/api/v2/images.py ``delete_from_store``: ``InUseByStore`` answers 409); a location added
with the old API (``show_multiple_locations``, a JSON patch) is checked with ``get_size``, one
added with ``POST /v2/images/{id}/locations`` is hashed with ``get`` (``do_secure_hash``) and
checked against ``validation_data`` (glance/async_/flows/location_import.py, whose revert pops
the location: the store's ``delete``); a download reads the locations by weight unless
``?prefer=`` names stores (glance/api/v2/image_data.py ``download``,
glance/common/utils.py ``sort_image_locations``).

A ``datera://`` location names an app instance, not a copy of it: a second image with the same
location shares it, and whichever image lets go of it deletes the data (as with rbd and cinder
locations). These tests pin that behaviour; doc/source/features.rst tells operators how to keep
it off.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pytest
from oslo_utils import units

from datera_glance.simulator import Simulator
from demo.glance_client import GlanceClient
from demo.glance_env import GlanceApi
from tests.plugins.glance import Images, app_instance, attach_users, payload, wait_until
from tests.plugins.glance_features import (
    DATERA,
    FILE,
    Expected,
    TwoStoreApis,
    assert_gone,
    assert_stored,
    cluster_lookups,
    file_store_path,
    wait_imported,
)

pytestmark = [pytest.mark.e2e, pytest.mark.root]

PATCH = "application/openstack-images-v2.1-json-patch"


@pytest.fixture(scope="module")
def glance_api(two_store_apis: TwoStoreApis) -> Iterator[GlanceApi]:
    """Overrides the plugin's glance-api for this module (``glance``, ``images`` use it)."""
    with two_store_apis.started("e2e-locations", datera={"weight": 10}, file={"weight": 20}) as api:
        yield api


def in_both_stores(glance: GlanceClient, images: Images, name: str, data: bytes) -> str:
    image_id = images.create(name)
    assert glance.upload(image_id, data, size=len(data), target="stage").status == 204
    assert glance.import_image(image_id, "glance-direct", all_stores=True).status == 202
    wait_imported(glance, image_id)
    return image_id


def datera_url(cluster: Simulator, image_id: str) -> str:
    return f"datera://{cluster.host}:{cluster.port}/app_instances/{image_id}"


def patch(glance: GlanceClient, image_id: str, ops: list[dict]) -> int:
    reply = glance.request("PATCH", f"/v2/images/{image_id}", ops,
                           headers={"Content-Type": PATCH})  # fmt: skip
    return reply.status


def test_delete_from_store_both_ways_and_409_while_read(
    glance: GlanceClient, glance_api: GlanceApi, e2e_cluster: Simulator, images: Images
) -> None:
    data = payload(40 * units.Mi + 11, seed=2410)
    expected = Expected(data)
    image_id = in_both_stores(glance, images, "store-delete", data)
    assert_stored(glance, e2e_cluster, image_id, expected, {FILE, DATERA})

    # A download from datera1 holds the volume: deleting it from datera1 meanwhile is a 409
    # and leaves both glance's location and the app instance.
    conn = glance.connect()
    try:
        conn.request("GET", f"/v2/images/{image_id}/file?prefer={DATERA}")
        resp = conn.getresponse()
        assert resp.status == 200
        first = resp.read(units.Mi)
        wait_until(lambda: attach_users(glance_api, image_id), what="the reader's attachment")
        busy = glance.request("DELETE", f"/v2/stores/{DATERA}/{image_id}")
        assert busy.status == 409, busy.text
        assert app_instance(e2e_cluster, image_id) is not None
        assert first + resp.read() == data
    finally:
        conn.close()
    wait_until(lambda: not attach_users(glance_api, image_id), what="the reader to let go")
    assert_stored(glance, e2e_cluster, image_id, expected, {FILE, DATERA})

    assert glance.request("DELETE", f"/v2/stores/{DATERA}/{image_id}").status == 204
    assert_gone(e2e_cluster, image_id)
    assert_stored(glance, e2e_cluster, image_id, expected, {FILE})

    # the other way round: the file1 copy goes, datera1 keeps the image
    other_id = in_both_stores(glance, images, "store-delete-file", data)
    assert glance.request("DELETE", f"/v2/stores/{FILE}/{other_id}").status == 204
    assert not file_store_path(glance_api, other_id).exists()
    assert_stored(glance, e2e_cluster, other_id, expected, {DATERA})
    # the last store cannot go: glance refuses (403), the app instance stays
    last = glance.request("DELETE", f"/v2/stores/{DATERA}/{other_id}")
    assert last.status == 403, last.text
    assert_stored(glance, e2e_cluster, other_id, expected, {DATERA})


def test_weights_and_prefer(glance: GlanceClient, e2e_cluster: Simulator, images: Images) -> None:
    """file1 weighs more: a plain download does not touch the cluster; ``?prefer=datera1``
    reads the app instance."""
    data = payload(6 * units.Mi + 1, seed=2411)
    image_id = in_both_stores(glance, images, "weights", data)
    locations = glance.get_image(image_id)["locations"]
    assert [loc["metadata"]["store"] for loc in locations] == [FILE, DATERA]  # by weight
    with cluster_lookups(e2e_cluster, image_id) as plain:
        assert glance.download_bytes(image_id) == data
    assert plain == [0]
    with cluster_lookups(e2e_cluster, image_id) as preferred:
        reply = glance.request("GET", f"/v2/images/{image_id}/file?prefer={DATERA}")
        assert (reply.status, reply.body) == (200, data)
    assert preferred[0] > 0
    with cluster_lookups(e2e_cluster, image_id) as file_first:
        reply = glance.request("GET", f"/v2/images/{image_id}/file?prefer={FILE},{DATERA}")
        assert (reply.status, reply.body) == (200, data)
    assert file_first == [0]


def test_old_location_api_add_and_remove(
    glance: GlanceClient, e2e_cluster: Simulator, images: Images
) -> None:
    """``show_multiple_locations``: a datera location added to a new image makes it active
    with the size ``get_size`` reports, on the same app instance; removing the datera
    location of an image in two stores deletes the app instance; deleting the image that
    shares a location deletes the other image's data too."""
    data = payload(3 * units.Mi + 3, seed=2412)
    expected = Expected(data)
    source_id = images.create("location-source")
    assert glance.upload(source_id, data, size=len(data)).status == 204
    sharing_id = images.create("location-sharing")
    add = {"op": "add", "path": "/locations/-",
           "value": {"url": datera_url(e2e_cluster, source_id), "metadata": {}}}  # fmt: skip
    assert patch(glance, sharing_id, [add]) == 200
    sharing = glance.get_image(sharing_id)
    assert (sharing["status"], sharing["size"], sharing["stores"]) == ("active", len(data), DATERA)
    assert sharing["checksum"] is None  # the old API hashes nothing
    assert glance.download_bytes(sharing_id) == data
    assert len([ai for ai in e2e_cluster.state()["app_instances"]
                if ai["name"] == f"OS-IMAGE-{source_id}"]) == 1  # fmt: skip
    assert app_instance(e2e_cluster, sharing_id) is None  # no app instance of its own

    # removal of the datera location of an image in both stores: the store's delete
    both_id = in_both_stores(glance, images, "location-remove", data)
    index = [loc["metadata"]["store"] for loc in glance.get_image(both_id)["locations"]]
    remove = {"op": "remove", "path": f"/locations/{index.index(DATERA)}"}
    assert patch(glance, both_id, [remove]) == 200
    assert_gone(e2e_cluster, both_id)
    assert_stored(glance, e2e_cluster, both_id, expected, {FILE})

    # the shared app instance goes with either image
    assert glance.delete_image(sharing_id) == 204
    assert_gone(e2e_cluster, source_id)
    assert glance.get_image(source_id)["status"] == "active"  # glance still lists it...
    gone = glance.download_reply(source_id)  # ...but the store's NotFound is a 204 (image_data.py)
    assert (gone.status, gone.body) == (204, b"")


@pytest.mark.parametrize("valid", [True, False])
def test_new_location_api(
    glance: GlanceClient, e2e_cluster: Simulator, images: Images, valid: bool
) -> None:
    """``POST /v2/images/{id}/locations`` (the ``service`` role): glance hashes the location
    through the store's ``get`` (``do_secure_hash``) and compares ``validation_data``. A
    mismatch reverts: the location is popped, which is the store's ``delete`` of the app
    instance the location names."""
    data = payload(4 * units.Mi + 9, seed=2413 + valid)
    expected = Expected(data)
    source_id = images.create(f"new-location-source-{valid}")
    assert glance.upload(source_id, data, size=len(data)).status == 204
    target_id = images.create(f"new-location-{valid}")
    sha512 = hashlib.sha512(data if valid else b"other bytes").hexdigest()
    body = {"url": datera_url(e2e_cluster, source_id),
            "validation_data": {"os_hash_algo": "sha512", "os_hash_value": sha512}}  # fmt: skip
    reply = glance.request("POST", f"/v2/images/{target_id}/locations", body,
                           headers={"X-Roles": "service"})  # fmt: skip
    assert reply.status == 202, reply.text
    if valid:
        wait_until(lambda: glance.get_image(target_id)["status"] == "active", what="active")
        target = glance.get_image(target_id)
        assert (target["checksum"], target["os_hash_value"]) == (expected.md5, sha512)
        assert target["stores"] == DATERA
        assert glance.download_bytes(target_id) == data
        assert_stored(glance, e2e_cluster, source_id, expected)
        return

    def reverted() -> bool:
        image = glance.get_image(target_id)
        return image["status"] == "queued" and not image.get("os_glance_import_task")

    wait_until(reverted, what="the revert")
    target = glance.get_image(target_id)
    assert (target["os_hash_value"], target["checksum"], target["locations"]) == (None, None, [])
    assert_gone(e2e_cluster, source_id)
