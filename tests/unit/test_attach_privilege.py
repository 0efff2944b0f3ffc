"""The privilege boundary (issue 22, section 3): no path from a record, from EDF or from a
filter argument reaches a privileged call unverified.

Before: rootwrap's ``datera-disk-chown`` filter let glance's user chown any file
(``/dev/../tmp/victim``; a symlink under the world-writable ``/dev/shm``), and forged attach
records drove that chown at every start. Now the owner change runs in datera-glance's own
privsep context, on a descriptor opened ``O_PATH|O_NOFOLLOW``, only for the block device whose
``st_rdev`` os-brick's device had. The privsep entry points run in-process here
(``set_client_mode(False)``, as os-brick's own tests do) against real loop devices, and the
filters through oslo.rootwrap's own matcher.
"""

from __future__ import annotations

import json
import os
import pathlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from datera_glance import attach, host, privileged
from datera_glance.attach import devices
from tests.unit.test_attach import FakeClient, FakeConnector, make_attacher, make_si, record_path

GLANCE_UID = 4242
ROOT_HELPER = "sudo glance-rootwrap /etc/glance/rootwrap.conf"

pytestmark = pytest.mark.root


@pytest.fixture
def in_process_privsep() -> Iterator[None]:
    """The privsep entry points run in this (root) process instead of a daemon."""
    privileged.default.set_client_mode(False)
    try:
        yield
    finally:
        privileged.default.set_client_mode(True)


@pytest.fixture
def victim(tmp_path: pathlib.Path) -> pathlib.Path:
    path = tmp_path / "victim"
    path.write_text("root's file")
    os.chown(path, 0, 0)
    return path


def _owner(path: str | pathlib.Path) -> int:
    return os.stat(path).st_uid


def test_lend_refuses_what_is_not_the_attached_block_device(
    loop_device: Callable[..., str], victim: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    dev, other = loop_device(1 << 20), loop_device(1 << 20)
    rdev = os.stat(dev).st_rdev
    shm_link = pathlib.Path("/dev/shm") / f"datera-glance-test-{os.getpid()}"
    shm_link.symlink_to(dev)
    try:
        for path, number in [
            (f"/dev/..{victim}", 0),  # a file through /dev/..
            (str(victim), 0),  # not under /dev
            (str(shm_link), rdev),  # a symlink to the right device
            (other, rdev),  # another block device
        ]:
            with pytest.raises(PermissionError if "shm" not in path else OSError):
                devices.lend(path, number, GLANCE_UID)
    finally:
        shm_link.unlink()
    assert _owner(victim) == _owner(dev) == _owner(other) == 0


def test_lend_and_give_back_the_attached_device(loop_device: Callable[..., str]) -> None:
    dev = loop_device(1 << 20)
    rdev = os.stat(dev).st_rdev
    assert devices.lend(dev, rdev, GLANCE_UID) and _owner(dev) == GLANCE_UID
    assert not devices.lend(dev, rdev, GLANCE_UID)  # already
    assert devices.give_back(dev, rdev, GLANCE_UID) and _owner(dev) == 0
    assert not devices.give_back(dev, rdev, GLANCE_UID)  # not glance's: left alone
    os.chown(dev, 1234, -1)
    try:
        with pytest.raises(PermissionError, match="not root"):
            devices.lend(dev, rdev, GLANCE_UID)  # only root's devices are lent
    finally:
        os.chown(dev, 0, -1)


def test_a_non_root_glance_gets_the_device_for_the_copy_and_root_gets_it_back(
    tmp_path: pathlib.Path, loop_device: Callable[..., str], in_process_privsep: None
) -> None:
    """The real LOCAL connector and device owner (privsep in-process) on a loop device."""
    dev = loop_device(1 << 20)
    client = FakeClient(make_si(device_path=dev))
    attacher = attach.Attacher(
        client,  # type: ignore[arg-type]
        attach.AttachSettings(
            connector="local",
            lock_path=str(tmp_path / "locks"),
            scope="s",
            initiator_name="iqn.2026-12.test:h",
        ),
        device_owner=attach.PrivsepDeviceOwner(ROOT_HELPER, lambda: GLANCE_UID),
        geteuid=lambda: GLANCE_UID,
    )
    with attacher.attached(client.ai()) as path:
        assert path == dev and _owner(dev) == GLANCE_UID
    assert _owner(dev) == 0


@pytest.mark.parametrize("connector", ["local", "iscsi"])
def test_forged_records_drive_no_privileged_call(
    tmp_path: pathlib.Path,
    loop_device: Callable[..., str],
    victim: pathlib.Path,
    connector: str,
    in_process_privsep: None,
) -> None:
    """Records a start's reclaim reads (no user, this boot): a path through /dev/.., a
    symlink, a root-owned block device that is not the record's. None changes an owner."""
    dev = loop_device(1 << 20)
    shm_link = pathlib.Path("/dev/shm") / f"datera-glance-test-{os.getpid()}"
    shm_link.symlink_to(victim)
    extra: dict[str, Any] = {"connector": "local", "initiator_name": "iqn.2026-12.test:h"}
    client, conn = FakeClient(make_si(device_path=dev)), FakeConnector(dev)
    attacher = make_attacher(
        tmp_path,
        client,
        conn,
        owner=attach.PrivsepDeviceOwner(ROOT_HELPER, lambda: GLANCE_UID),
        euid=GLANCE_UID,
        **(extra if connector == "local" else {}),
    )
    props = (
        {"device_path": dev}
        if connector == "local"
        else {"target_portal": "172.28.1.5:3260", "target_iqn": make_si().iqn, "target_lun": 0}
    )
    try:
        for path, rdev in [
            (f"/dev/..{victim}", 0),
            (str(shm_link), 0),
            (dev, os.stat(dev).st_rdev),  # root's: never lent, so never given back
            (dev, 0),
        ]:
            forged: dict[str, Any] = {
                "props": props,
                "device_info": {"path": path},
                "rdev": rdev,
                "lent": True,
                "boot": host.boot_id(),
            }
            record_path(tmp_path).write_text(json.dumps(forged))
            attacher.reclaim()
            assert not record_path(tmp_path).exists()
            assert _owner(victim) == _owner(dev) == 0, path
    finally:
        shm_link.unlink()
