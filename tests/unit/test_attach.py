"""The attach room with an injected connector factory, device owner and a recording fake EDF client.

The iSCSI path cannot run on these machines (no SCSI in the kernel), so the exact os-brick
connection properties and privileged commands are checked here; the LOCAL path runs for real
in the Store contract suite.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import pathlib
import threading
from dataclasses import replace
from typing import Any

import pytest
from os_brick import exception as brick_exception
from oslo_concurrency import processutils

from datera_glance import attach, host
from datera_glance.attach.records import Linger
from datera_glance.edf import errors, models

IQN = "iqn.1993-08.org.debian:01:host-a"
TARGET = "iqn.2013-05.com.daterainc:tc:01:sn:abcdef"
ROOT_HELPER = "sudo glance-rootwrap /etc/glance/rootwrap.conf"
AI_UUID = "5f0c8f0e-6d3e-4c39-9f6a-2f2a3f6f1c11"


def make_si(**kw: Any) -> models.StorageInstance:
    base = models.StorageInstance(
        name="storage-1",
        path=f"/app_instances/{AI_UUID}/storage_instances/storage-1",
        admin_state="online",
        op_state="available",
        iqn=TARGET,
        ips=("172.28.1.5", "172.28.1.6"),
        device_path=None,
        acl_initiators=(),
        volumes=(),
        auth_type="none",
    )
    return replace(base, **kw)


class FakeClient:
    """Records every call; keeps admin state, ACL and auth of one app instance."""

    def __init__(self, si: models.StorageInstance, admin_state: str = "online") -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.admin_state = admin_state
        self.acl: list[str] = list(si.acl_initiators)
        self.si = si
        self.lock = threading.Lock()

    def ai(self) -> models.AppInstance:
        si = replace(self.si, acl_initiators=tuple(self.acl))
        return models.AppInstance(
            id=AI_UUID,
            name=f"OS-IMAGE-{AI_UUID}",
            uuid=AI_UUID,
            path=f"/app_instances/{AI_UUID}",
            tenant="/root",
            admin_state=self.admin_state,
            storage_instances=(si,),
        )

    def _rec(self, *call: Any) -> None:
        with self.lock:
            self.calls.append(call)

    def ensure_initiator(self, iqn: str, name: str) -> models.Initiator:
        self._rec("ensure_initiator", iqn, name)
        return models.Initiator(id=iqn, name=name, path=f"/initiators/{iqn}", tenant="/root")

    def get_app_instance(self, ai: str) -> models.AppInstance:
        self._rec("get_app_instance", ai)
        return self.ai()

    def set_online(self, ai: str) -> models.AppInstance:
        self._rec("set_online", ai)
        self.admin_state = "online"
        return self.ai()

    def get_acl(self, ai: str) -> list[str]:
        self._rec("get_acl", ai)
        return list(self.acl)

    #: raised by add_acl_initiator, as the EDF client would (e.g. an unknown initiator)
    acl_error: errors.EdfError | None = None
    #: another host's entry that lands between attach's get_acl and its add
    racing_entry: str | None = None

    def add_acl_initiator(self, ai: str, path: str) -> None:
        """Like the EDF client's: atomic and idempotent."""
        self._rec("add_acl_initiator", ai, path)
        if self.acl_error is not None:
            raise self.acl_error
        if self.racing_entry is not None:
            self.acl.append(self.racing_entry)
        if path not in self.acl:
            self.acl.append(path)

    def set_chap(self, ai: str, username: str, password: str) -> None:
        self._rec("set_chap", ai, username, password)
        # EDF shows the target's CHAP user name (auth.target_user_name), never the secret
        self.si = replace(self.si, auth_type="chap", chap_user=username)

    def clear_chap(self, ai: str) -> None:
        self._rec("clear_chap", ai)
        self.si = replace(self.si, auth_type="none", chap_user="")

    def wait_available(self, ai: str, *, timeout: float) -> models.StorageInstance:
        self._rec("wait_available", ai, timeout)
        return self.ai().storage_instance


class FakeConnector:
    def __init__(self, path: str, initiator: str | None = IQN) -> None:
        self.path = path
        self.initiator = initiator
        self.connects: list[dict[str, Any]] = []
        self.disconnects: list[tuple[dict[str, Any], dict[str, Any], bool]] = []

    def get_connector_properties(self, root_helper: str, *a: Any, **kw: Any) -> dict[str, Any]:
        return {"initiator": self.initiator} if self.initiator else {}

    def connect_volume(self, props: dict[str, Any]) -> dict[str, Any]:
        self.connects.append(dict(props))
        return {"type": "block", "scsi_wwn": "36001405abcdef", "path": self.path}

    def disconnect_volume(
        self,
        props: dict[str, Any],
        device_info: dict[str, Any],
        force: bool = False,
        ignore_errors: bool = False,
    ) -> None:
        self.disconnects.append((dict(props), dict(device_info), force))


class Owner:
    """A ``DeviceOwner`` stand-in recording its calls; fails the way the privsep one does
    (its failures come out of ``host_errors`` as AttachError)."""

    def __init__(self, fail: bool = False) -> None:
        self.calls: list[tuple[str, str, int | None]] = []
        self.fail = fail

    def lend(self, path: str, rdev: int | None) -> bool:
        self.calls.append(("lend", path, rdev))
        if self.fail:
            with attach.errors.host_errors(f"handing {path} to uid 4242"):
                raise PermissionError(1, "privsep refused", path)
        return True

    def give_back(self, path: str, rdev: int | None) -> None:
        self.calls.append(("give_back", path, rdev))


@pytest.fixture
def device(tmp_path: pathlib.Path) -> str:
    dev = tmp_path / "sdx"
    dev.write_bytes(b"\0" * 4096)
    return str(dev)


def make_attacher(
    tmp_path: pathlib.Path,
    client: FakeClient,
    fake: FakeConnector,
    *,
    factory_calls: list[tuple[str, str]] | None = None,
    owner: attach.DeviceOwner | None = None,
    euid: int = 0,
    **settings: Any,
) -> attach.Attacher:
    def factory(protocol: str, root_helper: str) -> FakeConnector:
        if factory_calls is not None:
            factory_calls.append((protocol, root_helper))
        return fake

    cfg = attach.AttachSettings(
        connector=settings.pop("connector", "iscsi"),
        lock_path=str(tmp_path / "locks"),
        scope="10.0.0.1:7718/root",
        **settings,
    )
    # udev's link for the LUN, which tells a record's device is this target's
    by_path = tmp_path / "by-path"
    by_path.mkdir(parents=True, exist_ok=True)
    link = by_path / f"ip-{client.si.ips[0]}:3260-iscsi-{client.si.iqn}-lun-0"
    if not link.is_symlink():
        link.symlink_to(fake.path)
    return attach.Attacher(
        client,  # type: ignore[arg-type]
        cfg,
        connector_factory=factory,
        device_owner=owner or Owner(),
        geteuid=lambda: euid,
        by_path_dir=str(by_path),
    )


def test_iscsi_connection_properties_and_calls(tmp_path: pathlib.Path, device: str) -> None:
    client = FakeClient(make_si(acl_initiators=("/initiators/iqn.other-host",)))
    conn = FakeConnector(device)
    factory_calls: list[tuple[str, str]] = []
    attacher = make_attacher(tmp_path, client, conn, factory_calls=factory_calls)

    with attacher.attached(client.ai()) as path:
        assert path == device
        assert conn.connects == [
            {
                "target_portal": "172.28.1.5:3260",
                "target_iqn": TARGET,
                "target_lun": 0,
                "target_discovered": False,
                "discard": False,
            }
        ]
        assert conn.disconnects == []
    assert factory_calls == [("ISCSI", ROOT_HELPER)]
    [(props, info, force)] = conn.disconnects
    assert props == conn.connects[0] and info["path"] == device and force is True
    names = [c[0] for c in client.calls]
    assert names == [
        "ensure_initiator",
        "get_app_instance",
        "get_acl",
        "add_acl_initiator",
        "wait_available",
    ]
    assert client.calls[0][1] == IQN and client.calls[0][2].startswith("OpenStack-glance-")
    assert client.calls[3] == ("add_acl_initiator", AI_UUID, f"/initiators/{IQN}")
    # the other host's entry is kept; nothing is offlined or removed
    assert client.acl == ["/initiators/iqn.other-host", f"/initiators/{IQN}"]
    assert not list((tmp_path / "locks").glob("*.json"))


@pytest.mark.parametrize(
    ("connector", "multipath", "strategy"),
    [
        ("local", False, attach.LocalStrategy),
        ("local", True, attach.LocalStrategy),
        ("iscsi", False, attach.IscsiStrategy),
        ("iscsi", True, attach.IscsiMultipathStrategy),
    ],
)
def test_one_strategy_is_chosen_from_the_options(
    connector: str, multipath: bool, strategy: type[attach.ConnectorStrategy]
) -> None:
    chosen = attach.strategy_for(connector, multipath, ROOT_HELPER)
    assert type(chosen) is strategy
    assert chosen.use_multipath == (strategy is attach.IscsiMultipathStrategy)
    with pytest.raises(attach.AttachError, match="datera_connector"):
        attach.strategy_for("fc", multipath, ROOT_HELPER)


def test_multipath_properties_name_every_portal(tmp_path: pathlib.Path, device: str) -> None:
    """os-brick's iSCSI connector logs in to each (portal, iqn, lun) of ``target_portals``,
    ``target_iqns`` and ``target_luns`` when multipath is on (os_brick/initiator/connectors/
    iscsi.py, ``_get_all_targets``)."""
    client = FakeClient(make_si())
    conn = FakeConnector(device)
    attacher = make_attacher(tmp_path, client, conn, use_multipath=True)
    assert type(attacher.strategy) is attach.IscsiMultipathStrategy
    with attacher.attached(client.ai()):
        [props] = conn.connects
    assert props["target_portals"] == ["172.28.1.5:3260", "172.28.1.6:3260"]
    assert props["target_iqns"] == [TARGET, TARGET] and props["target_luns"] == [0, 0]
    assert props["target_portal"] == "172.28.1.5:3260" and props["target_iqn"] == TARGET


def test_offline_app_instance_is_onlined_and_acl_not_duplicated(
    tmp_path: pathlib.Path, device: str
) -> None:
    client = FakeClient(make_si(acl_initiators=(f"/initiators/{IQN}",)), admin_state="offline")
    attacher = make_attacher(tmp_path, client, FakeConnector(device))
    with attacher.attached(client.ai()):
        pass
    names = [c[0] for c in client.calls]
    assert "set_online" in names and "add_acl_initiator" not in names
    assert client.admin_state == "online"


CHAP_KEY = b"Vb3k9-chap-key-random-24"


def test_chap_credentials_are_derived_set_and_handed_to_os_brick(
    tmp_path: pathlib.Path, device: str
) -> None:
    key = CHAP_KEY
    user, secret = attach.chap_credentials(key, AI_UUID)
    assert len(secret) == 16 and secret.isalnum() and user == "glance-5f0c8f0e6d3e"
    assert attach.chap_credentials(key, AI_UUID) == (user, secret)
    assert attach.chap_credentials(b"other", AI_UUID)[1] != secret

    client = FakeClient(make_si())
    conn = FakeConnector(device)
    attacher = make_attacher(tmp_path, client, conn, use_chap=True, chap_key=key)
    with attacher.attached(client.ai()):
        [props] = conn.connects
        assert props["auth_method"] == "CHAP"
        assert (props["auth_username"], props["auth_password"]) == (user, secret)
        records = list((tmp_path / "locks").glob("*.json"))
        assert records and all(secret not in r.read_text() for r in records)
    assert ("set_chap", AI_UUID, user, secret) in client.calls
    assert secret not in repr(attacher._settings)

    # a second host computes the same credentials (and sets the same ones: EDF never shows
    # a secret, so every fresh attach sets it)
    conn2 = FakeConnector(device, initiator="iqn.1993-08.org.debian:01:host-b")
    other = make_attacher(tmp_path / "b", client, conn2, use_chap=True, chap_key=key)
    client.calls.clear()
    with other.attached(client.ai()):
        assert conn2.connects[0]["auth_password"] == secret
    assert [c for c in client.calls if c[0] == "set_chap"] == [("set_chap", AI_UUID, user, secret)]


def test_chap_user_names_reveal_nothing_of_a_secret() -> None:
    """EDF shows the user name (auth.target_user_name) and iSCSI sends it in clear: it is the
    same whatever the key (before, it ended with 8 hex digits of the secret's HMAC, and a weak
    cluster password was recovered offline). Each image's secret is its own: one recovered
    secret tells nothing of another image's."""
    user_a, secret_a = attach.chap_credentials(b"key-a-0123456789ab", AI_UUID)
    user_b, secret_b = attach.chap_credentials(b"key-b-0123456789ab", AI_UUID)
    assert user_a == user_b == f"glance-{AI_UUID.replace('-', '')[:12]}"
    assert secret_a != secret_b
    other_uuid = "0c7a1b3e-1111-4c39-9f6a-2f2a3f6f1c11"
    assert attach.chap_credentials(b"key-a-0123456789ab", other_uuid)[1] != secret_a
    assert secret_a not in user_a and all(len(s) == 16 for s in (secret_a, secret_b))


def test_users_share_one_attachment_and_the_last_disconnects(
    tmp_path: pathlib.Path, device: str
) -> None:
    client = FakeClient(make_si())
    conn = FakeConnector(device)
    attacher = make_attacher(tmp_path, client, conn)
    first = attacher.attach(client.ai())
    second = attacher.attach(client.ai())
    assert first.path == second.path == device
    assert len(conn.connects) == 1
    first.close()
    first.close()  # idempotent
    assert conn.disconnects == []
    second.close()
    assert len(conn.disconnects) == 1


def test_threads_connect_and_disconnect_in_pairs(tmp_path: pathlib.Path, device: str) -> None:
    client = FakeClient(make_si())
    conn = FakeConnector(device)
    attacher = make_attacher(tmp_path, client, conn)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            for _ in range(20):
                with attacher.attached(client.ai()) as path:
                    assert path == device
        except BaseException as e:  # collected for the main thread
            errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(conn.connects) == len(conn.disconnects) >= 1
    assert not list((tmp_path / "locks").glob("*.json"))


def _attach_and_die(attacher: attach.Attacher, ai: models.AppInstance) -> None:
    attacher.attach(ai)
    os._exit(0)  # a worker killed while holding the device


def _dead_worker_record(
    tmp_path: pathlib.Path, device: str
) -> tuple[FakeClient, FakeConnector, attach.Attacher, pathlib.Path, int]:
    """An attacher whose record names one user: a forked worker that attached and died."""
    client = FakeClient(make_si())
    conn = FakeConnector(device)
    attacher = make_attacher(tmp_path, client, conn)
    proc = multiprocessing.get_context("fork").Process(
        target=_attach_and_die, args=(attacher, client.ai())
    )
    proc.start()
    proc.join(30)
    assert proc.exitcode == 0 and proc.pid is not None
    [record] = (tmp_path / "locks").glob("*.json")
    return client, conn, attacher, record, proc.pid


def test_a_dead_worker_does_not_keep_the_device_forever(
    tmp_path: pathlib.Path, device: str
) -> None:
    client, conn, attacher, record, _ = _dead_worker_record(tmp_path, device)
    assert len(json.loads(record.read_text())["users"]) == 1  # the dead worker's entry

    with attacher.attached(client.ai()):
        assert len(conn.connects) == 1  # the parent's connector: it re-attached
    assert len(conn.disconnects) == 1
    assert not list((tmp_path / "locks").glob("*.json"))


def test_device_lent_when_glance_is_not_root(tmp_path: pathlib.Path, device: str) -> None:
    client = FakeClient(make_si())
    conn = FakeConnector(device)
    owner = Owner()
    attacher = make_attacher(tmp_path, client, conn, owner=owner, euid=4242)
    a = attacher.attach(client.ai())
    b = attacher.attach(client.ai())
    assert owner.calls == [("lend", device, None)]  # a file, not a block device: no rdev
    a.close()
    b.close()
    assert owner.calls == [("lend", device, None), ("give_back", device, None)]
    assert len(conn.disconnects) == 1


def test_nothing_lent_as_root(tmp_path: pathlib.Path, device: str) -> None:
    owner = Owner()
    client = FakeClient(make_si())
    attacher = make_attacher(tmp_path, client, FakeConnector(device), owner=owner)
    with attacher.attached(client.ai()):
        pass
    assert owner.calls == []


def test_failed_lend_disconnects_and_raises(tmp_path: pathlib.Path, device: str) -> None:
    # the privsep daemon's failure reaches the Store as AttachError
    client = FakeClient(make_si())
    conn = FakeConnector(device)
    attacher = make_attacher(tmp_path, client, conn, owner=Owner(fail=True), euid=4242)
    with pytest.raises(attach.AttachError, match="privsep refused"):
        attacher.attach(client.ai())
    assert len(conn.connects) == len(conn.disconnects) == 1
    assert not list((tmp_path / "locks").glob("*.json"))


def test_iscsi_without_initiator_name_is_a_clear_error(tmp_path: pathlib.Path, device: str) -> None:
    client = FakeClient(make_si())
    attacher = make_attacher(tmp_path, client, FakeConnector(device, initiator=None))
    with pytest.raises(attach.AttachError, match="datera_initiator_name"):
        attacher.attach(client.ai())


def test_configured_initiator_name_is_used_when_os_brick_has_none(
    tmp_path: pathlib.Path, device: str
) -> None:
    client = FakeClient(make_si(device_path=device))
    conn = FakeConnector(device, initiator=None)
    factory_calls: list[tuple[str, str]] = []
    attacher = make_attacher(
        tmp_path,
        client,
        conn,
        factory_calls=factory_calls,
        connector="local",
        initiator_name="iqn.2026-11.test:host-b",
    )
    with attacher.attached(client.ai()):
        assert conn.connects == [{"device_path": device}]
    assert factory_calls == [("LOCAL", ROOT_HELPER)]
    assert client.calls[0][:2] == ("ensure_initiator", "iqn.2026-11.test:host-b")


def test_local_without_device_path_is_a_clear_error(tmp_path: pathlib.Path, device: str) -> None:
    client = FakeClient(make_si())
    attacher = make_attacher(
        tmp_path, client, FakeConnector(device), connector="local", initiator_name="iqn.x:y"
    )
    with pytest.raises(attach.AttachError, match="device_path"):
        attacher.attach(client.ai())


def test_iscsi_properties_need_access() -> None:
    with pytest.raises(attach.AttachError):
        attach.iscsi_properties(make_si(ips=()))


@pytest.mark.parametrize(
    "access",
    [
        {"ips": ("172.28.1.5", "--op=delete")},
        {"ips": ("172.28.1.5 -o delete",)},
        {"iqn": "iqn.2013-05.com.daterainc:tc -o delete"},
        {"iqn": "--interface=evil"},
    ],
    ids=["ip-option", "ip-spaces", "iqn-spaces", "iqn-option"],
)
def test_what_edf_reports_is_checked_before_it_reaches_iscsiadm(
    tmp_path: pathlib.Path, device: str, access: dict[str, Any]
) -> None:
    """Portal addresses and the IQN become iscsiadm's arguments (as root, in os-brick's
    privsep daemon): a cluster's answer that is not an address or an iSCSI name is refused."""
    client = FakeClient(make_si(**access))
    conn = FakeConnector(device)
    with pytest.raises(attach.AttachError, match="reports a bad"):
        make_attacher(tmp_path, client, conn).attach(client.ai())
    assert conn.connects == []


def test_acl_entry_added_by_a_racing_host_is_kept(tmp_path: pathlib.Path, device: str) -> None:
    # Another host adds itself after this one read the ACL; the client's add is atomic, so
    # attach only has to add its own entry (it never rewrites the list itself).
    client = FakeClient(make_si())
    client.racing_entry = "/initiators/iqn.racing-host"
    with make_attacher(tmp_path, client, FakeConnector(device)).attached(client.ai()):
        pass
    assert client.acl == ["/initiators/iqn.racing-host", f"/initiators/{IQN}"]
    assert [c[0] for c in client.calls].count("add_acl_initiator") == 1


def test_acl_validation_errors_are_not_hidden(tmp_path: pathlib.Path, device: str) -> None:
    client = FakeClient(make_si())
    client.acl_error = errors.ValidationFailed("no such initiator", status=422)
    conn = FakeConnector(device)
    with pytest.raises(errors.ValidationFailed):
        make_attacher(tmp_path, client, conn).attach(client.ai())
    assert conn.connects == [] and not list((tmp_path / "locks").glob("*.json"))


# -- issue 11: host failures, CHAP refresh, attach records that cannot be trusted ----------


class BrokenConnector(FakeConnector):
    """Fails where asked, with what os-brick and rootwrap raise."""

    def __init__(self, path: str, fail: str, secret: str = "") -> None:
        super().__init__(path)
        self.fail = fail
        # what iscsiadm says may carry the CHAP secret of the command it ran
        self.error = processutils.ProcessExecutionError(
            cmd=f"iscsiadm -m node --op update -n node.session.auth.password -v {secret}",
            stderr="iscsiadm: login failed",
            exit_code=24,
        )

    def get_connector_properties(self, root_helper: str, *a: Any, **kw: Any) -> dict[str, Any]:
        if self.fail == "properties":
            raise self.error
        return super().get_connector_properties(root_helper, *a, **kw)

    def connect_volume(self, props: dict[str, Any]) -> dict[str, Any]:
        if self.fail == "connect":
            raise self.error
        return super().connect_volume(props)

    def disconnect_volume(self, *args: Any, **kwargs: Any) -> None:
        super().disconnect_volume(*args, **kwargs)
        if self.fail == "disconnect":
            raise OSError(5, "Input/output error")


@pytest.mark.parametrize("fail", ["factory", "properties", "connect", "disconnect"])
def test_os_brick_and_rootwrap_failures_are_attach_errors(
    tmp_path: pathlib.Path, device: str, fail: str
) -> None:
    """attach.py's callers (the Store) translate AttachError for glance; os-brick's and
    processutils' own exception types would reach glance as a 500."""
    key = CHAP_KEY
    secret = attach.chap_credentials(key, AI_UUID)[1]
    client = FakeClient(make_si())
    conn = BrokenConnector(device, fail, secret)
    attacher = make_attacher(tmp_path, client, conn, use_chap=True, chap_key=key)
    if fail == "factory":

        def factory(protocol: str, root_helper: str) -> Any:
            raise brick_exception.BrickException("no such protocol")

        attacher = attach.Attacher(
            client,  # type: ignore[arg-type]
            attacher._settings,
            connector_factory=factory,
            device_owner=Owner(),
        )
    if fail == "disconnect":
        attachment = attacher.attach(client.ai())
        with pytest.raises(attach.AttachError, match="Input/output error"):
            attachment.close()
    else:
        with pytest.raises(attach.AttachError) as info:
            attacher.attach(client.ai())
        assert secret not in str(info.value)
    assert not list((tmp_path / "locks").glob("*.json"))


def test_chap_is_reset_when_the_chap_key_rotates(tmp_path: pathlib.Path, device: str) -> None:
    """After a rotation of datera_chap_key the target still holds the old secret, which EDF
    never shows (and the user name does not tell): every fresh attach sets the secret."""
    client = FakeClient(make_si())
    conn = FakeConnector(device)
    old = make_attacher(tmp_path / "a", client, conn, use_chap=True, chap_key=b"old-key-0123456789")
    with old.attached(client.ai()):
        pass
    new_user, new_secret = attach.chap_credentials(b"new-key-0123456789", AI_UUID)
    client.calls.clear()
    new = make_attacher(tmp_path / "b", client, conn, use_chap=True, chap_key=b"new-key-0123456789")
    with new.attached(client.ai()):
        assert conn.connects[-1]["auth_password"] == new_secret
    assert ("set_chap", AI_UUID, new_user, new_secret) in client.calls


def test_chap_follows_datera_use_chap_both_ways(tmp_path: pathlib.Path, device: str) -> None:
    client = FakeClient(make_si())
    conn = FakeConnector(device)
    with make_attacher(tmp_path / "on", client, conn, use_chap=True).attached(client.ai()):
        assert conn.connects[-1]["auth_method"] == "CHAP"
    assert client.si.auth_type == "chap"
    # turned off: the target must stop asking for CHAP, or os-brick's login fails
    with make_attacher(tmp_path / "off", client, conn).attached(client.ai()):
        assert "auth_method" not in conn.connects[-1]
    assert ("clear_chap", AI_UUID) in client.calls and client.si.auth_type == "none"
    # and on again
    client.calls.clear()
    with make_attacher(tmp_path / "again", client, conn, use_chap=True).attached(client.ai()):
        assert conn.connects[-1]["auth_method"] == "CHAP"
    assert [c[0] for c in client.calls].count("set_chap") == 1


def test_a_worker_whose_pid_was_reused_does_not_keep_the_device(
    tmp_path: pathlib.Path, device: str, caplog: pytest.LogCaptureFixture
) -> None:
    """pid_max (32768 here) wraps within hours on a busy host: a dead worker's pid may belong
    to a live process by the time the next reader looks. Its record entry names the start
    time too, so the new owner of the pid is not taken for it: the dead worker's entry is
    dropped and the device attached afresh, without calling the record unreadable."""
    client, conn, attacher, record, pid = _dead_worker_record(tmp_path, device)
    state = json.loads(record.read_text())
    [dead] = state["users"]
    child_pid, child_start, unique = dead.split(":")
    assert child_pid == str(pid) and child_start.isdigit()
    # The dead worker's entry, as if its pid now were this (live) process's.
    state["users"] = [f"{os.getpid()}:{child_start}:{unique}"]
    record.write_text(json.dumps(state))
    with caplog.at_level("WARNING", logger="datera_glance.attach"):
        with attacher.attached(client.ai()):
            assert len(conn.connects) == 1  # not joined: re-attached
        assert len(conn.disconnects) == 1
    assert "Ignoring attach record" not in caplog.text


def test_user_tokens_name_the_process_and_its_start() -> None:
    """``user_running``: this process's own token is running; the same pid with another start time
    is not; nor is a token of an older version (pid only: the upgrade restarted every
    process), nor a dead process's."""
    mine = attach.user_token()
    pid, start, unique = mine.split(":")
    assert pid == str(os.getpid()) and len(unique) == 32 and attach.user_running(mine)
    assert not attach.user_running(f"{pid}:{int(start) + 1}:{unique}")
    assert not attach.user_running(f"{pid}:{unique}")
    child = multiprocessing.get_context("fork").Process(target=os._exit, args=(0,))
    child.start()
    child.join(30)  # reaped: its pid runs nothing now
    assert not attach.user_running(f"{child.pid}:{start}:{unique}")


def test_a_linger_of_a_reused_pid_is_over() -> None:
    """A linger names its process's start time too; one without (an older version's) falls
    back to the pid alone."""
    lingers = attach.Lingers(lambda: 100.0, lambda seconds, fn: threading.Timer(seconds, fn))
    entry = Linger(id="1", boot=lingers.boot, pid=os.getpid(), start=None, until=130.0)
    start = host.start_ticks(os.getpid())
    assert start is not None
    assert lingers.live(replace(entry, start=start))
    assert not lingers.live(replace(entry, start=str(int(start) + 1)))
    assert lingers.live(entry)
    assert not lingers.live(replace(entry, until=99.0))


def record_path(tmp_path: pathlib.Path) -> pathlib.Path:
    scope = hashlib.sha256(b"10.0.0.1:7718/root").hexdigest()[:12]
    return tmp_path / "locks" / f"datera-glance-attach-{scope}-{AI_UUID}.json"


LIVE_USER = attach.user_token()  # this process: a user that is alive


@pytest.mark.parametrize(
    "record",
    [
        "{not json",
        '["a", "list"]',
        '{"users": "everyone"}',
        json.dumps({"users": ["1:nothex"]}),
        json.dumps({"users": [], "device_info": {"path": "/dev/sda"}, "props": {}, "rdev": "0"}),
        json.dumps({"users": [LIVE_USER], "device_info": "/dev/sda"}),
        json.dumps({"users": [LIVE_USER], "device_info": {"path": "/dev/sda"}}),  # no props
    ],
    ids=["not-json", "list", "users-str", "bad-token", "rdev-str", "info-str", "no-props"],
)
def test_records_that_do_not_parse_are_ignored_and_logged(
    tmp_path: pathlib.Path, device: str, record: str, caplog: pytest.LogCaptureFixture
) -> None:
    client = FakeClient(make_si())
    conn = FakeConnector(device)
    attacher = make_attacher(tmp_path, client, conn)
    record_path(tmp_path).write_text(record)
    with (
        caplog.at_level("WARNING", logger="datera_glance.attach"),
        attacher.attached(client.ai()) as path,
    ):
        assert path == device
    assert len(conn.connects) == len(conn.disconnects) == 1
    assert "Ignoring attach record" in caplog.text


@pytest.mark.parametrize("connector", ["iscsi", "local"])
def test_a_record_naming_another_device_is_never_trusted(
    tmp_path: pathlib.Path, device: str, connector: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The device path and uid in a record feed ``sudo glance-rootwrap chown``: one naming a
    file that is not this app instance's device must neither be read nor chowned."""
    victim = tmp_path / "victim"
    victim.write_text("not an image")
    client = FakeClient(make_si(device_path=device))
    conn = FakeConnector(device)
    owner = Owner()
    settings: dict[str, Any] = {"connector": connector}
    if connector == "local":
        settings["initiator_name"] = "iqn.2026-11.test:host-b"
    attacher = make_attacher(tmp_path, client, conn, owner=owner, euid=4242, **settings)
    props = (
        {"device_path": str(victim)}
        if connector == "local"
        else {"target_portal": "172.28.1.5:3260", "target_iqn": TARGET, "target_lun": 0}
    )
    boot = host.boot_id()
    forged = {"props": props, "device_info": {"path": str(victim)}, "lent": True, "boot": boot}
    # a live user: joining would hand the victim to the reader
    record_path(tmp_path).write_text(json.dumps({**forged, "users": [LIVE_USER]}))
    with (
        caplog.at_level("WARNING", logger="datera_glance.attach"),
        attacher.attached(client.ai()) as path,
    ):
        assert path == device
    assert "its device is not app instance" in caplog.text
    # no user left: the old owner it names would be restored on the real device by root
    record_path(tmp_path).write_text(json.dumps({**forged, "users": []}))
    with attacher.attached(client.ai()) as path:
        assert path == device
    # the real device is lent and given back; the victim never reaches the device owner
    assert [c[1] for c in owner.calls] == [device] * 4
    assert str(victim) not in [p.get("device_path") for p in conn.connects]
