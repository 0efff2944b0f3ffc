"""Datera's Cinder driver's volumes in glance's tenant survive every command (issue 21).

``cinder_neighbours.py`` makes them with Datera's SDK as the driver does (in a network
namespace: dfs-sdk only connects to port 7717), next to glance's images, a killed upload and
the create request of another, then runs ``ls``, ``show``, ``verify``, ``rm``, ``gc``,
``Store.add``, ``Store.delete`` (the original driver's tenant-less URIs too) and the attach
sweep, and records after each which neighbours changed (app instance or bytes). Before the
ownership rule (``datera_glance.ownership``), ``ls`` listed them as orphans and
``gc --apply --older-than 0`` deleted them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.root, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
NEIGHBOURS = ["bare", "cache", "clone", "named_image", "named_image_bare", "plain"]


@pytest.fixture(scope="module")
def seen() -> dict[str, Any]:
    """One run of the program (about a minute); its JSON result."""
    if os.geteuid() != 0:
        pytest.skip("unshare --net needs root")
    script = 'ip link set lo up && exec "$0" -m tests.integration.cinder_neighbours'
    proc = subprocess.run(
        ["unshare", "--net", "sh", "-c", script, sys.executable],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "error" not in result, result["error"]
    assert sorted(result["names"]) == NEIGHBOURS
    return result


def step(seen: dict[str, Any], name: str) -> dict[str, Any]:
    [found] = [s for s in seen["steps"] if s["step"] == name]
    assert found["changed"] == [], f"{name} changed {found['changed']}"
    return found


def doc(found: dict[str, Any]) -> Any:
    return json.loads(found["out"])


def test_the_neighbours_are_what_cinder_makes(seen: dict[str, Any]) -> None:
    names, ids = seen["names"], seen["ids"]
    assert names["cache"] == f"OS-{ids['A']}"
    assert names["named_image"].startswith("OS-IMAGE-")
    assert names["named_image_bare"].startswith("OS-IMAGE-")
    assert all(names[r].startswith("OS-") for r in ("plain", "bare", "clone"))


def test_ls_lists_only_glance_images(seen: dict[str, Any]) -> None:
    ids = seen["ids"]
    listed = {i["id"]: i["state"] for i in doc(step(seen, "ls"))["images"]}
    assert listed == {
        ids["A"]: "complete",
        ids["B"]: "complete",
        ids["C"]: "complete",
        ids["killed"]: "orphan",
        ids["created_only"]: "orphan",
    }
    everything = doc(step(seen, "ls --all"))["images"]
    foreign = {i["app_instance"]: i["state"] for i in everything if i["state"] == "not glance's"}
    assert foreign == {name: "not glance's" for name in seen["names"].values()}


@pytest.mark.parametrize("role", ["plain", "named_image", "clone"])
def test_show_verify_rm_refuse_a_cinder_volume(seen: dict[str, Any], role: str) -> None:
    name = seen["names"][role]
    for command in ("show", "verify", "rm"):
        found = step(seen, f"{command} {role}")
        assert found["rc"] == 1, found
        assert f"app instance {name} is not glance's" in found["err"], found["err"]


def test_show_finds_glance_image_not_cinder_cache_of_it(seen: dict[str, Any]) -> None:
    shown = doc(step(seen, "show A"))
    assert shown["app_instance"] == f"OS-IMAGE-{seen['ids']['A']}"
    verified = doc(step(seen, "verify --all"))
    assert verified["ok"] is True
    assert sorted(i["id"] for i in verified["images"]) == sorted(
        seen["ids"][k] for k in ("A", "B", "C")
    )


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
    ids = seen["ids"]
    dry = doc(step(seen, "gc dry run"))
    assert sorted(e["id"] for e in dry["leftovers"]) == sorted([ids["killed"], ids["created_only"]])
    applied = step(seen, "gc --apply")
    assert applied["rc"] == 0, applied["err"]
    assert sorted((e["id"], e["action"]) for e in doc(applied)["leftovers"]) == sorted(
        [(ids["killed"], "removed"), (ids["created_only"], "removed")]
    )


def test_rm_and_delete_of_our_images_leave_cinder_cache_and_clone(seen: dict[str, Any]) -> None:
    assert doc(step(seen, "rm A"))["deleted"] is True
    assert step(seen, "delete B")["raised"] is None
    assert step(seen, "sweep")["raised"] is None
    assert seen["ours_left"] == ["C"]
    assert seen["neighbours_left"] == NEIGHBOURS
    listed = doc(step(seen, "ls at the end"))["images"]
    assert sorted(i["app_instance"] for i in listed if i["state"] == "not glance's") == sorted(
        seen["names"].values()
    )
