"""What sits on the local disk (issue 23, section 2): attach records and lock files under
``lock_path`` that a crash, a bug or someone else left. A record that cannot be one is ignored
and logged, never fatal; a record that can never be cleaned is cleaned; lock files are bounded;
a ``lock_path`` others could write is refused (its records feed privileged calls).

Each test goes through the ``Attacher``'s public calls, as the Store does.
"""

from __future__ import annotations

import json
import os
import pathlib
import stat

import pytest

from datera_glance import attach, host
from tests.unit.test_attach import (
    AI_UUID,
    FakeClient,
    FakeConnector,
    make_attacher,
    make_si,
    record_path,
)


@pytest.fixture
def device(tmp_path: pathlib.Path) -> str:
    dev = tmp_path / "sdx"
    dev.write_bytes(b"\0" * 4096)
    return str(dev)


def _record(device: str, users: list[str], **extra: object) -> str:
    """A record as the attacher writes it for the fake iSCSI target, this boot."""
    props = {"target_portal": "172.28.1.5:3260", "target_iqn": make_si().iqn, "target_lun": 0}
    body = {"props": props, "device_info": {"path": device}, "boot": host.boot_id()}
    return json.dumps({**body, "users": users, **extra})


def test_a_deeply_nested_record_is_ignored_not_fatal(
    tmp_path: pathlib.Path, device: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Before: json.load raised RecursionError and every read of the image failed."""
    client, conn = FakeClient(make_si()), FakeConnector(device)
    attacher = make_attacher(tmp_path, client, conn)
    record_path(tmp_path).write_text("[" * 100_000 + "]" * 100_000)
    with (
        caplog.at_level("WARNING", logger="datera_glance.attach"),
        attacher.attached(client.ai()) as path,
    ):
        assert path == device
    assert "Ignoring attach record" in caplog.text
    assert len(conn.connects) == len(conn.disconnects) == 1


@pytest.mark.parametrize("contents", [False, True], ids=["empty-dir", "full-dir"])
def test_a_directory_where_a_record_belongs_is_not_fatal(
    tmp_path: pathlib.Path, device: str, contents: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """Before: IsADirectoryError on every read (and write) of that image's record."""
    client, conn = FakeClient(make_si()), FakeConnector(device)
    attacher = make_attacher(tmp_path, client, conn)
    record_path(tmp_path).mkdir()
    if contents:
        (record_path(tmp_path) / "x").write_text("x")
    with caplog.at_level("WARNING", logger="datera_glance.attach"):
        for _ in range(2):
            with attacher.attached(client.ai()) as path:
                assert path == device
                assert record_path(tmp_path).is_file()
    assert not record_path(tmp_path).exists()  # released: the record is gone
    assert len(conn.connects) == 2


def test_a_symlinked_record_is_not_followed(
    tmp_path: pathlib.Path, device: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A record that is a symlink (to a record naming a live user) is not read: joining it
    would hand out whatever it names."""
    client, conn = FakeClient(make_si()), FakeConnector(device)
    attacher = make_attacher(tmp_path, client, conn)
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_text(_record(device, [attach.user_token()]))
    before = elsewhere.read_text()
    record_path(tmp_path).symlink_to(elsewhere)
    with (
        caplog.at_level("WARNING", logger="datera_glance.attach"),
        attacher.attached(client.ai()),
    ):
        assert len(conn.connects) == 1  # attached afresh, not joined
    assert "Ignoring attach record" in caplog.text
    assert elsewhere.read_text() == before  # the symlink itself was replaced, not its target
    assert not record_path(tmp_path).is_symlink()


def test_a_record_with_a_bad_linger_is_swept(
    tmp_path: pathlib.Path, device: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Before: ``linger.pid: "zz"`` made every reclaim fail on int("zz"), so the record was
    never cleaned."""
    client, conn = FakeClient(make_si()), FakeConnector(device)
    attacher = make_attacher(tmp_path, client, conn)
    linger = {"id": "a" * 32, "pid": "zz", "start": "1", "boot": host.boot_id(), "until": 1e12}
    record_path(tmp_path).write_text(_record(device, [], linger=linger))
    with caplog.at_level("WARNING", logger="datera_glance.attach"):
        attacher.reclaim()
    assert not record_path(tmp_path).exists()
    assert "Ignoring attach record" in caplog.text


@pytest.mark.parametrize("form", ["old", "with-start"])
def test_a_user_token_for_pid_1_does_not_keep_a_record_forever(
    tmp_path: pathlib.Path, device: str, form: str
) -> None:
    """pid 1 always runs: a token naming it (an older version's ``pid:id``, or with init's
    own start time) kept the device attached and the record for ever."""
    init_start = host.start_ticks(1) or "1"
    token = f"1:{'f' * 32}" if form == "old" else f"1:{init_start}:{'f' * 32}"
    client, conn = FakeClient(make_si()), FakeConnector(device)
    attacher = make_attacher(tmp_path, client, conn)
    record_path(tmp_path).write_text(_record(device, [token]))
    assert attacher.reclaim()
    assert not record_path(tmp_path).exists()
    assert len(conn.disconnects) == 1  # the device it held is detached


def test_users_of_an_earlier_boot_do_not_count(tmp_path: pathlib.Path, device: str) -> None:
    """pids and start times start again at each boot: a user recorded by an earlier boot is
    never this boot's process, whatever runs under its pid now."""
    client, conn = FakeClient(make_si()), FakeConnector(device)
    attacher = make_attacher(tmp_path, client, conn)
    record = json.loads(_record(device, [attach.user_token()]))
    record["boot"] = "an-earlier-boot"
    record_path(tmp_path).write_text(json.dumps(record))
    with attacher.attached(client.ai()):
        assert len(conn.connects) == 1  # not joined
    attacher.reclaim()
    assert not record_path(tmp_path).exists()


def test_lock_files_are_bounded(tmp_path: pathlib.Path, device: str) -> None:
    """Before: one lock file per image ever touched (failed uploads included), never
    deleted. Now a fixed number of striped lock files per cluster and tenant, and a reclaim
    removes the per-image ones older versions left."""
    client, conn = FakeClient(make_si()), FakeConnector(device)
    attacher = make_attacher(tmp_path, client, conn)
    locks = tmp_path / "locks"
    scope = record_path(tmp_path).name.split("-")[3]
    old = locks / f"datera-glance-attach-{scope}-{AI_UUID}"
    old.touch()  # an older version's per-image lock file
    for n in range(300):
        attacher.unless_attached(f"00000000-0000-4000-8000-{n:012d}", lambda: None)
    with attacher.attached(client.ai()):
        pass
    attacher.reclaim()
    files = sorted(p.name for p in locks.iterdir())
    assert len(files) <= 64, files[:5]
    assert old.name not in files


@pytest.mark.parametrize("mode", [0o770, 0o777, 0o730])
def test_a_lock_path_others_can_write_is_refused(tmp_path: pathlib.Path, mode: int) -> None:
    """Before: only world-writable was refused; 0770 let the group forge records that drive
    privileged calls."""
    locks = tmp_path / "locks"
    locks.mkdir()
    locks.chmod(mode)
    with pytest.raises(attach.AttachError, match="chmod 700"):
        make_attacher(tmp_path, FakeClient(make_si()), FakeConnector("unused"))


def test_a_lock_path_in_a_directory_others_can_write_is_refused(tmp_path: pathlib.Path) -> None:
    """A parent that others may write (without the sticky bit) lets them rename lock_path
    away and put their own in its place."""
    parent = tmp_path / "open"
    parent.mkdir()
    parent.chmod(0o777)
    with pytest.raises(attach.LockPathError, match="sticky"):
        attach.validate_lock_path(str(parent / "locks"), os.geteuid())
    parent.chmod(0o1777)  # as /tmp: others cannot rename what is not theirs
    attach.validate_lock_path(str(parent / "locks"), os.geteuid())
    assert stat.S_IMODE(os.stat(parent / "locks").st_mode) == 0o700


@pytest.mark.root
def test_a_lock_path_owned_by_another_user_is_refused(tmp_path: pathlib.Path) -> None:
    locks = tmp_path / "locks"
    locks.mkdir(mode=0o700)
    os.chown(locks, 4243, -1)
    with pytest.raises(attach.LockPathError, match="owned by uid 4243"):
        attach.validate_lock_path(str(locks), 4242)
