"""Datera's Cinder driver's volumes in glance's tenant survive every command (issue 21).

``cinder_neighbours.py`` makes them with Datera's SDK as the driver does (in a network
namespace: dfs-sdk only connects to port 7717), next to glance's images, a killed upload and
the create request of another, then runs ``ls``, ``show``, ``verify``, ``rm``, ``gc``,
``Store.add``, ``Store.delete`` (the original driver's tenant-less URIs too) and the
reclaim of stale attachments, and records after each which neighbours changed (app instance
or bytes). Before the ownership rule (``datera_glance.ownership``), ``ls`` listed them as
orphans and ``gc --apply --older-than 0`` deleted them.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.integration.netns import run_isolated

pytestmark = [pytest.mark.root, pytest.mark.slow]

ROLES = ["bare", "cache", "clone", "named_image", "named_image_bare", "plain"]
GROUPS = ["add", "delete", "gc", "look", "rm"]


@pytest.fixture(scope="module")
def seen() -> dict[str, Any]:
    """One run of the program (about a minute and a half); its JSON result."""
    result = run_isolated("tests.integration.cinder_neighbours", timeout=600)
    assert "error" not in result, result["error"]
    assert result["neighbours"] == [f"{g}:{r}" for g in GROUPS for r in ROLES]
    names, images = result["names"], result["images"]
    # as Cinder's driver names them (datera_common.get_name; the cache: _cache_vol_2_2)
    for group in GROUPS:
        assert names[f"{group}:cache"] == f"OS-{images[group]['A']}"
        assert names[f"{group}:named_image"].startswith("OS-IMAGE-")
        assert names[f"{group}:named_image_bare"].startswith("OS-IMAGE-")
    return result


def step(seen: dict[str, Any], name: str) -> dict[str, Any]:
    """The step ``name``; it changed no neighbour (app instance or bytes)."""
    [found] = [s for s in seen["steps"] if s["step"] == name]
    assert found["changed"] == [], f"{name} changed {found['changed']}"
    return found


def doc(found: dict[str, Any]) -> Any:
    return json.loads(found["out"])


def test_ls_lists_only_glance_images(seen: dict[str, Any]) -> None:
    images, leftovers = seen["images"]["look"], seen["leftovers"]
    listed = {i["id"]: i["state"] for i in doc(step(seen, "ls"))["images"]}
    assert listed == {
        images["A"]: "complete",
        images["B"]: "complete",
        leftovers["killed"]: "orphan",
        leftovers["created_only"]: "orphan",
    }
    everything = doc(step(seen, "ls --all"))["images"]
    foreign = {i["app_instance"] for i in everything if i["state"] == "not glance's"}
    assert foreign == {seen["names"][f"look:{role}"] for role in ROLES}
    # image A's own app instance, not Cinder's cache of it (OS-<A>)
    assert doc(step(seen, "show A"))["app_instance"] == f"OS-IMAGE-{images['A']}"


@pytest.mark.parametrize("command", ["show", "verify", "rm"])
@pytest.mark.parametrize("role", ["plain", "named_image", "clone"])
def test_show_verify_rm_refuse_a_cinder_volume(
    seen: dict[str, Any], command: str, role: str
) -> None:
    name = seen["names"][f"{'rm' if command == 'rm' else 'look'}:{role}"]
    found = step(seen, f"{command} {role}")
    assert found["rc"] == 1, found
    assert f"app instance {name} is not glance's" in found["err"], found["err"]


def test_verify_and_check_report_an_image_that_lost_its_type_tag(seen: dict[str, Any]) -> None:
    """Datera's Cinder driver force-deletes an app instance it finds for an image when its
    metadata lacks ``type: image`` (``datera_api22.py`` ``_clone_image_2_2``)."""
    images = seen["images"]["look"]
    verified = doc(step(seen, "verify --all"))
    assert verified["ok"] is False
    status = {i["id"]: i["status"] for i in verified["images"]}
    assert status[images["A"]] == status[images["B"]] == "ok"
    assert status[images["untagged"]].startswith("untagged: complete, but its metadata lacks")
    assert sorted(status) == sorted(images.values())
    check = step(seen, "check")
    assert check["rc"] == 1
    [tags] = [c for c in doc(check)["checks"] if c["name"] == "image tags"]
    assert tags["status"] == "error" and f"OS-IMAGE-{images['untagged']}" in tags["detail"]


def test_add_does_not_replace_a_cinder_volume_named_like_an_image(seen: dict[str, Any]) -> None:
    found = step(seen, "add over named_image_bare")
    assert found["raised"] == "Duplicate"
    assert "is not glance's" in found["message"]


@pytest.mark.parametrize("role", ["named_image", "cache", "plain", "bare"])
def test_store_delete_and_get_size_leave_a_cinder_volume(seen: dict[str, Any], role: str) -> None:
    """glance reads NotFound from delete as "already gone" and forgets the location
    (glance/common/store_utils.py ``safe_delete_from_backend``); the volume stays."""
    assert step(seen, f"delete {role}")["raised"] == "NotFound"
    assert step(seen, f"get_size {role}")["raised"] == "NotFound"


def test_gc_collects_our_leftovers_only(seen: dict[str, Any]) -> None:
    """Our killed upload carries the marker ``Store.add`` set in its create request."""
    killed = seen["leftovers"]["killed"]
    assert seen["leftover_descrs"]["killed"] == f"datera-glance image {killed}"
    leftovers = sorted(seen["leftovers"].values())
    dry = doc(step(seen, "gc dry run"))
    assert sorted(e["id"] for e in dry["leftovers"]) == leftovers
    applied = step(seen, "gc --apply")
    assert applied["rc"] == 0, applied["err"]
    assert sorted((e["id"], e["action"]) for e in doc(applied)["leftovers"]) == [
        (image, "removed") for image in leftovers
    ]
    assert not [i for i in leftovers if f"OS-IMAGE-{i}" in seen["ours_left"]]


def test_every_neighbour_survives_to_the_end(seen: dict[str, Any]) -> None:
    """Also through ``rm`` of image A beside Cinder's cache of it (``OS-<A>``) and
    ``Store.delete`` of image B beside the volume Cinder cloned from it."""
    assert doc(step(seen, "rm A"))["deleted"] is True
    assert f"OS-IMAGE-{seen['images']['rm']['A']}" not in seen["ours_left"]
    assert step(seen, "delete B")["raised"] is None
    assert f"OS-IMAGE-{seen['images']['delete']['B']}" not in seen["ours_left"]
    assert step(seen, "reclaim")["raised"] is None
    assert seen["neighbours_left"] == seen["neighbours"]
    assert all(not s["changed"] for s in seen["steps"]), [s["step"] for s in seen["steps"]]
    listed = doc(step(seen, "ls at the end"))["images"]
    foreign = sorted(i["app_instance"] for i in listed if i["state"] == "not glance's")
    assert foreign == sorted(seen["names"].values())
