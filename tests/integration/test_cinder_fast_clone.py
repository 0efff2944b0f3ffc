"""Datera's Cinder driver fast-clones an image our ``Store.add`` wrote (dfs-sdk 1.2.27).

``cinder_fast_clone.py`` replays the driver's calls (Datera/cinder-driver
``src/cinder/volume/drivers/datera/datera_api22.py`` ``_clone_image_2_2``, ``datera_api21.py``
``_clone_image_2_1``, ``datera_common.py`` ``cvol_to_ai``/``get_tenant``) with Datera's own SDK,
in a network namespace of its own because the SDK only ever connects to port 7717.

The Cinder volume asks for the smallest whole GiB that holds the image (Cinder refuses a
smaller volume than the image). The driver sets that size on the clone with an offline flip:
EDF never shrinks a volume, so the image's volume must not be larger than that: an upload of
unknown size must end on the image's whole GiB (before that rule, this failed with "cannot
shrink (4 -> 3)").
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from oslo_utils import units

from tests.integration.netns import run_isolated

pytestmark = [pytest.mark.root, pytest.mark.slow]

#: Past 2 GiB: an unknown-size upload grows 1 -> 2 -> 4 GiB, the Cinder volume asks for 3.
BIG_IMAGE = 2 * units.Gi + units.Mi + 5
SMALL_IMAGE = 5 * units.Mi + 5


def replay(**case: Any) -> dict[str, Any]:
    """Run one replay in a new network namespace; its JSON result."""
    return run_isolated("tests.integration.cinder_fast_clone", json.dumps(case))


@pytest.mark.parametrize("api_version", ["2.1", "2.2"])
@pytest.mark.parametrize("size_known", [True, False], ids=["known-size", "unknown-size"])
def test_cinder_fast_clone_reads_back_the_image(api_version: str, size_known: bool) -> None:
    result = replay(api_version=api_version, image_size=BIG_IMAGE, size_known=size_known)
    assert "error" not in result, result["error"]
    assert result["requested_gib"] == 3
    assert result["clone_gib"] == 3
    assert result["device_bytes"] == 3 * units.Gi
    assert result["equal"] is True
    assert result["clone_admin_state"] == "online"
    assert result["acl"] == ["/initiators/iqn.1993-08.org.debian:01:cinder-host"]


@pytest.mark.parametrize(
    ("glance_tenant_id", "cinder_tenant_id", "fast"),
    [
        ("", "", True),  # both unset: /root
        ("/root", "", True),
        ("images", "images", True),  # both /root/images
        ("/root/images", "images", True),
        ("/root/images", "/root/images", False),  # Cinder: any name with "root" is /root
        ("images", "", False),  # Cinder looks in /root
        ("", "Map", False),  # Cinder looks in /root/OS-<project id>
    ],
)
def test_which_tenant_settings_get_fast_clones(
    glance_tenant_id: str, cinder_tenant_id: str, fast: bool
) -> None:
    result = replay(
        api_version="2.2",
        image_size=SMALL_IMAGE,
        size_known=True,
        glance_tenant_id=glance_tenant_id,
        cinder_tenant_id=cinder_tenant_id,
    )
    if fast:
        assert "error" not in result, result["error"]
        assert result["equal"] is True
    else:
        # The driver's lookup finds nothing: it would copy the image through the host instead.
        assert result.get("error", "").startswith("LookupError"), result


def test_map_tenant_matches_only_the_one_project_it_names() -> None:
    """``Map`` gives each project ``/root/OS-<project id>``: a glance store whose tenant is that
    one gets fast clones for that project only."""
    project = "0123456789abcdef0123456789abcdef"
    result = replay(
        api_version="2.2",
        image_size=SMALL_IMAGE,
        size_known=True,
        glance_tenant_id=f"OS-{project}",
        cinder_tenant_id="Map",
        project_id=project,
    )
    assert "error" not in result, result["error"]
    assert result["equal"] is True
