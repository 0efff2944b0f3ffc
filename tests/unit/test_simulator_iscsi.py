"""Simulator ``--iscsi``: the LIO configuration each storage instance's state asks for.

Here configfs is a plain directory (``PlainConfigFs``), so these tests check the tree the
simulator writes: one target per online storage instance with EDF's IQN, LUN 0 and one
portal group per ``access.ips`` entry, the ACL and CHAP of the storage instance, nothing
while offline. The iSCSI lane (``tests/iscsi``) logs in to the real kernel target.
"""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from datera_glance.simulator import Simulator
from datera_glance.simulator.iscsi import ConfigFs, LioTargets, portals_of
from tests.plugins.simulator import Edf

IQN = "iqn.1993-08.org.debian:01:reader1"
OTHER = "iqn.1993-08.org.debian:01:reader2"


class PlainConfigFs(ConfigFs):
    """configfs on a plain directory: attribute files and default groups appear when written,
    and (as on configfs) a directory with links below it cannot be removed."""

    def write(self, path: str, value: str) -> None:
        (self.root / path).parent.mkdir(parents=True, exist_ok=True)
        super().write(path, value)

    def rmdir(self, path: str) -> None:
        where = self.root / path
        links = [p for p in where.rglob("*") if p.is_symlink()]
        groups = [p for p in where.iterdir() if p.name.startswith("tpgt_")]
        if links or groups:  # configfs refuses to remove what is still linked or populated
            raise OSError(errno.ENOTEMPTY, "links or portal groups left", str(where))
        shutil.rmtree(where)


class Commands:
    def __init__(self) -> None:
        self.run: list[list[str]] = []

    def __call__(self, argv: Sequence[str]) -> str:
        self.run.append(list(argv))
        return ""


@pytest.fixture
def lio(tmp_path: Path) -> Iterator[tuple[Simulator, Path, Commands]]:
    root = tmp_path / "config" / "target"
    root.mkdir(parents=True)
    commands = Commands()
    targets = LioTargets(fs=PlainConfigFs(root), run=commands)
    sim = Simulator(tmp_path / "data", iscsi=targets)
    sim.start()
    try:
        yield sim, root, commands
    finally:
        sim.stop()


def names(path: Path) -> list[str]:
    """Entries of a directory; configfs' default groups do not exist in a plain one: []."""
    return sorted(p.name for p in path.iterdir()) if path.exists() else []


def read(path: Path) -> str:
    return path.read_text(encoding="ascii")


def online_ai(edf: Edf, name: str = "OS-IMAGE-1") -> tuple[str, dict[str, object]]:
    known = {i["id"] for i in edf.call("GET", "/initiators")["data"]}
    for iqn in {IQN, OTHER} - known:
        edf.call("POST", "/initiators", json={"id": iqn, "name": iqn[-7:]})
    ai = edf.create_ai(name)["data"]
    return ai["id"], ai["storage_instances"][0]


def test_online_storage_instance_is_a_target_with_edf_iqn_lun0_and_both_portals(
    lio: tuple[Simulator, Path, Commands],
) -> None:
    """EDF shows ``access {ips, iqn}``; Datera's Cinder driver connects each ip:3260 with
    ``target_lun = 0`` (datera_api22 ``_initialize_connection_2_2``)."""
    sim, root, commands = lio
    assert commands.run == [["modprobe", "-a", "target_core_file", "iscsi_target_mod"]]
    edf = Edf(sim)
    _ai_id, si = online_ai(edf)
    access = si["access"]
    assert isinstance(access, dict)
    assert access["ips"] == ["127.0.0.1", "127.0.0.2"]
    target = root / "iscsi" / access["iqn"]
    vol_uuid = si["volumes"][0]["uuid"]  # type: ignore[index]
    store = root / "core" / "fileio_0" / vol_uuid
    volume_file = sim.data_dir / "volumes" / f"{vol_uuid}.img"
    assert read(store / "control") == f"fd_dev_name={volume_file},fd_dev_size={1 << 30}"
    assert read(store / "wwn" / "vpd_unit_serial") == vol_uuid
    for n, ip in ((1, "127.0.0.1"), (2, "127.0.0.2")):
        tpg = target / f"tpgt_{n}"
        assert (tpg / "np" / f"{ip}:3260").is_dir()
        assert os.readlink(tpg / "lun" / "lun_0" / "volume") == str(store)
        assert read(tpg / "attrib" / "generate_node_acls") == "0"  # deny_all: EDF's default
        assert read(tpg / "attrib" / "authentication") == "0"
        assert read(tpg / "enable") == "1"
        assert names(tpg / "acls") == []  # empty ACL: nobody logs in


def test_acl_and_chap_reach_the_target_and_leave_it(lio: tuple[Simulator, Path, Commands]) -> None:
    """ACL members and ``auth`` type chap (``target_user_name``/``target_pswd``, what
    Datera's Cinder driver sets in ``_create_export_2_2``) become LIO ACL nodes with CHAP."""
    sim, root, _ = lio
    edf = Edf(sim)
    ai_id, si = online_ai(edf)
    si_path = f"/app_instances/{ai_id}/storage_instances/storage-1"
    for iqn in (IQN, OTHER):
        edf.call(
            "PUT",
            f"{si_path}/acl_policy/initiators",
            json={"op": "add", "path": f"/initiators/{iqn}"},
        )
    auth = {"type": "chap", "target_user_name": "glance-user", "target_pswd": "secret-16-chars!"}
    edf.call("PUT", f"{si_path}/auth", json=auth)
    tpgs = [root / "iscsi" / si["access"]["iqn"] / f"tpgt_{n}" for n in (1, 2)]  # type: ignore[index]
    for tpg in tpgs:
        assert names(tpg / "acls") == sorted([IQN, OTHER])
        node = tpg / "acls" / IQN
        assert os.readlink(node / "lun_0" / "lun_0") == str(tpg / "lun" / "lun_0")
        assert read(node / "auth" / "userid") == "glance-user"
        assert read(node / "auth" / "password") == "secret-16-chars!"
        assert read(tpg / "attrib" / "authentication") == "1"
    edf.call(
        "PUT",
        f"{si_path}/acl_policy/initiators",
        json={"op": "remove", "path": f"/initiators/{OTHER}"},
    )
    edf.call("PUT", f"{si_path}/auth", json={"type": "none"})
    for tpg in tpgs:
        assert names(tpg / "acls") == [IQN]
        assert read(tpg / "acls" / IQN / "auth" / "userid") == "NULL"  # LIO's "cleared"
        assert read(tpg / "attrib" / "authentication") == "0"


def test_offline_and_delete_remove_the_target(lio: tuple[Simulator, Path, Commands]) -> None:
    """A target exists only while its app instance is online."""
    sim, root, _ = lio
    edf = Edf(sim)
    ai_id, si = online_ai(edf)
    si_path = f"/app_instances/{ai_id}/storage_instances/storage-1"
    edf.call(
        "PUT", f"{si_path}/acl_policy/initiators", json={"op": "add", "path": f"/initiators/{IQN}"}
    )
    assert sim.iscsi is not None and sim.iscsi.targets() == [si["access"]["iqn"]]  # type: ignore[index]
    edf.call("PUT", f"/app_instances/{ai_id}", json={"admin_state": "offline"})
    assert sim.iscsi.targets() == []
    assert names(root / "core" / "fileio_0") == []
    edf.call("PUT", f"/app_instances/{ai_id}", json={"admin_state": "online"})
    assert sim.iscsi.targets() == [si["access"]["iqn"]]  # type: ignore[index]
    assert (root / "iscsi" / si["access"]["iqn"] / "tpgt_1" / "acls" / IQN).is_dir()  # type: ignore[index]
    edf.call("DELETE", f"/app_instances/{ai_id}", json={"force": True})
    assert sim.iscsi.targets() == []


def test_stop_portal_disables_its_portal_group_only(lio: tuple[Simulator, Path, Commands]) -> None:
    sim, root, _ = lio
    edf = Edf(sim)
    _ai_id, si = online_ai(edf)
    target = root / "iscsi" / si["access"]["iqn"]  # type: ignore[index]
    assert sim.iscsi is not None
    sim.iscsi.stop_portal("127.0.0.2")
    assert (read(target / "tpgt_1" / "enable"), read(target / "tpgt_2" / "enable")) == ("1", "0")
    _ai2, si2 = online_ai(edf, "OS-IMAGE-2")  # a target made meanwhile starts stopped there too
    assert read(root / "iscsi" / si2["access"]["iqn"] / "tpgt_2" / "enable") == "0"  # type: ignore[index]
    sim.iscsi.start_portal("127.0.0.2")
    assert read(target / "tpgt_2" / "enable") == "1"
    with pytest.raises(ValueError, match="not a portal"):
        sim.iscsi.stop_portal("127.0.0.3")


def test_restart_serves_online_targets_again_and_stop_removes_them(tmp_path: Path) -> None:
    """Targets are runtime state (like loop devices): gone at stop, made again at start."""
    root = tmp_path / "target"
    root.mkdir()
    sim = Simulator(tmp_path / "data", iscsi=LioTargets(fs=PlainConfigFs(root), run=Commands()))
    with sim:
        _ai_id, si = online_ai(Edf(sim))
        iqn = si["access"]["iqn"]  # type: ignore[index]
    assert not (root / "iscsi" / iqn).exists()
    again = Simulator(tmp_path / "data", iscsi=LioTargets(fs=PlainConfigFs(root), run=Commands()))
    with again:
        assert again.iscsi is not None and again.iscsi.targets() == [iqn]
    assert not (root / "iscsi" / iqn).exists()


def test_without_iscsi_storage_instances_keep_one_portal(simulator: Simulator) -> None:
    edf = Edf(simulator)
    assert edf.create_ai("OS-IMAGE-1")["data"]["storage_instances"][0]["access"]["ips"] == [
        "127.0.0.1"
    ]
    assert simulator.iscsi is None


def test_portals_of() -> None:
    assert portals_of(None) == ("127.0.0.1", "127.0.0.2")
    assert portals_of("127.0.0.1, 127.0.0.3,") == ("127.0.0.1", "127.0.0.3")
