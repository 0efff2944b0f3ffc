"""Real EDF v2.1 captures parse into the typed results.

The app instance list is read from the package (``datera_glance/simulator/data``, which the
simulator serves from); the storage instance and volume lists, which only tests need, from
``tests/data/edf-v2.1``. All are copies of the real captures in the team's shared data.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import datera_glance
from datera_glance.edf import models

PACKAGED = Path(datera_glance.__file__).parent / "simulator" / "data"
TEST_DATA = Path(__file__).resolve().parents[1] / "data" / "edf-v2.1"


def _capture(packaged: str) -> Any:
    return json.loads((PACKAGED / packaged).read_text())


def test_packaged_capture_is_used() -> None:
    """Fails when the package lost its copy (the fallback is for development only)."""
    assert (PACKAGED / "ai_list_21.json").is_file()


def test_v21_app_instance_list_parses() -> None:
    listing = _capture("ai_list_21.json")
    assert listing["metadata"] == {"total": 2}
    first, second = (models.AppInstance.from_json(a) for a in listing["data"])
    assert first.id == "b1ac5967-12aa-4959-b24c-c60dd40d0a13"
    assert first.path == f"/app_instances/{first.id}"
    assert (first.name, first.tenant, first.admin_state) == ("test-app-1", "/root", "online")
    assert first.uuid == "00000000-0000-0000-0000-000000000000"
    si = first.storage_instance
    assert si.name == "storage-1"
    assert si.path == f"{first.path}/storage_instances/storage-1"
    assert (si.admin_state, si.op_state) == ("online", "available")
    assert si.iqn == "iqn.2013-05.com.daterainc:tc:01:sn:9b8e220259a8a79f"
    assert si.ips == ("172.28.41.43", "172.29.41.56")
    assert si.device_path is None  # a real cluster has no simulator device path
    assert si.acl_initiators == ()
    assert si.auth_type == "none"
    assert first.volume == models.Volume(
        name="volume-1",
        path=f"{si.path}/volumes/volume-1",
        uuid="6c26437d-0afb-44f5-880e-8e6bc00bd7ac",
        size_gib=10,
        op_state="available",
    )
    assert second.volume.size_gib == 20
    assert second.storage_instance.iqn.endswith("9ffc3647d0b9e0bc")


@pytest.mark.parametrize("name", ["si_list_21.json", "vol_list_21.json"])
def test_other_v21_captures_parse(name: str) -> None:
    listing = json.loads((TEST_DATA / name).read_text())
    (ai,) = (models.AppInstance.from_json(a) for a in listing["data"])
    assert ai.volume.size_gib == 20
    assert ai.storage_instance.ips == ("172.28.41.43", "172.29.41.56")


def test_models_are_frozen_and_hashable() -> None:
    listing = _capture("ai_list_21.json")
    ai = models.AppInstance.from_json(listing["data"][0])
    with pytest.raises(AttributeError):
        ai.name = "x"  # type: ignore[misc]
    assert hash(ai) == hash(models.AppInstance.from_json(listing["data"][0]))


def test_acl_chap_and_device_path() -> None:
    si = models.StorageInstance.from_json(
        {
            "name": "storage-1",
            "op_state": "available",
            "access": {"iqn": "iqn.x", "ips": ["1.2.3.4"], "device_path": "/dev/loop7"},
            "acl_policy": {"initiators": [{"path": "/initiators/iqn.a"}, "/initiators/iqn.b"]},
            "auth": {"type": "chap", "target_pswd": "(hidden)"},
            "volumes": [],
        }
    )
    assert si.device_path == "/dev/loop7"
    assert si.acl_initiators == ("/initiators/iqn.a", "/initiators/iqn.b")
    assert si.auth_type == "chap"
    with pytest.raises(LookupError):
        _ = si.volume


def test_system_and_initiator() -> None:
    system = models.System.from_json(
        {
            "name": "c",
            "uuid": "u",
            "sw_version": "3.3.5.1",
            "total_capacity": 10 * 2**40,
            "available_capacity": 2**40,
            "op_state": "running",
        }
    )
    assert system.available_capacity == 2**40
    assert system.version_tuple == (3, 3, 5, 1)
    assert system.version_tuple >= (3, 3)
    assert models.System.from_json({"sw_version": "3.2.5.0"}).version_tuple < (3, 3)
    init = models.Initiator.from_json(
        {"id": "iqn.x", "name": "h", "path": "/initiators/iqn.x", "tenant": "/root/t"}
    )
    assert (init.id, init.path, init.tenant) == ("iqn.x", "/initiators/iqn.x", "/root/t")
