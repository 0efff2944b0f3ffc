"""Which tenant Datera's Cinder driver looks in (``datera_glance.cli.cinder``, for ``check``).

Datera/cinder-driver ``datera_common.py`` ``get_tenant``/``_format_tenant`` and
``datera_iscsi.py`` ``DateraDriver.__init__``; the same pairings are replayed end to end with
Datera's SDK in ``tests/integration/test_cinder_fast_clone.py``.
"""

from __future__ import annotations

import pytest

from datera_glance.cli import cinder
from datera_glance.edf import normalize_tenant


@pytest.mark.parametrize(
    ("glance_tenant_id", "cinder_tenant_id", "fast"),
    [
        ("", "", True),
        ("/root", "", True),
        ("images", "images", True),
        ("/root/images", "images", True),
        ("/root/images", "/root/images", False),  # "root" in it: Cinder uses /root
        ("", "/root/images", True),
        ("images", "", False),
        ("", "Map", False),
        ("OS-0123456789abcdef0123456789abcdef", "Map", False),  # one project only
        ("", "None", False),  # the driver fails on it
        ("a/b", "a/b", True),
    ],
)
def test_agreement_matches_the_driver(
    glance_tenant_id: str, cinder_tenant_id: str, fast: bool
) -> None:
    tenant = normalize_tenant(glance_tenant_id)
    assert cinder.agreement(tenant, cinder_tenant_id)[0] is fast


def test_map_names_its_one_project() -> None:
    tenant = "/root/OS-0123456789abcdef0123456789abcdef"
    assert "project 0123456789abcdef0123456789abcdef" in cinder.agreement(tenant, "map")[1]
    assert cinder.setting_for(tenant) == (
        "OS-0123456789abcdef0123456789abcdef (or Map, for project "
        "0123456789abcdef0123456789abcdef only)"
    )


@pytest.mark.parametrize(
    ("tenant", "setting"),
    [("/root", "unset"), ("/root/images", "images"), ("/root/a/b", "a/b"),
     ("/root/rootfs", None), ("/root/a/groot", None)],
)  # fmt: skip
def test_setting_for(tenant: str, setting: str | None) -> None:
    assert cinder.setting_for(tenant) == setting
    if setting is not None and setting != "unset":
        assert cinder.cinder_tenant(setting) == tenant
