"""The production attach path for real: the unchanged Store with ``datera_connector = iscsi``
through os-brick's ISCSIConnector (real ``iscsiadm`` in a privsep daemon started by
``sudo glance-rootwrap``), against the simulator's real iSCSI targets (the kernel's LIO on
127.0.0.1:3260 and 127.0.0.2:3260), in the lane's qemu guest.

Runs only there (``tests/iscsi/guest.sh``); the host's ``tests/iscsi/test_lane.py`` reports
each case. After every case no iSCSI session, SCSI disk or dm device may be left
(``conftest.nothing_left``). Login counts and refusals are the target's own counters
(LIO's ``iscsi_login_stats``), not the driver's word.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import shlex
import subprocess
import time
import types
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from glance_store import exceptions
from oslo_utils import units

from datera_glance.edf import ClientConfig, EdfClient
from datera_glance.simulator import Simulator
from datera_glance.store import Store
from tests.integration.test_store_contract import Source, locate, read_all
from tests.iscsi.guest.conftest import CLEAN, leftovers, load_glance_conf, target_iqn

ROOT_HELPER = "sudo glance-rootwrap /etc/glance/rootwrap.conf"  # the Store's default
CHAP_KEY = "iscsi-lane-chap-key-0123"  # datera_chap_key: 16 characters at least


def new_id() -> str:
    return str(uuid.uuid4())


def logins(sim: Simulator, image_id: str) -> dict[str, int]:
    assert sim.iscsi is not None
    return sim.iscsi.login_stats(target_iqn(sim, image_id))


def stored_ai(sim: Simulator, image_id: str) -> dict[str, Any]:
    [ai] = [a for a in sim.state()["app_instances"] if a["uuid"] == image_id]
    return ai


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ---- add, get, ranged get, delete (CHAP off) ---------------------------------------------


def test_add_known_size_get_ranges_delete(
    iscsi_sim: Simulator, iscsi_store: Callable[..., Store]
) -> None:
    store = iscsi_store()
    size = 5 * units.Mi + 123
    data = os.urandom(size)
    image_id = new_id()
    uri, written, md5, multihash, _ = store.add(image_id, Source(data), size, "sha256")
    assert (written, md5, multihash) == (size, hashlib.md5(data).hexdigest(), sha256(data))
    assert stored_ai(iscsi_sim, image_id)["admin_state"] == "online"
    assert read_all(store, uri) == (data, size)
    for offset, length in ((0, 1), (511, 4097), (4 * units.Mi - 5, 10), (size - 10, 10)):
        got, reported = read_all(store, uri, offset=offset, chunk_size=length)
        assert (got, reported) == (data[offset : offset + length], length), (offset, length)
    assert store.get_size(locate(store, uri)) == size
    stats = logins(iscsi_sim, image_id)
    assert stats["accepts"] >= 2 and stats["authenticate_fails"] == 0
    store.delete(locate(store, uri))
    assert iscsi_sim.iscsi is not None and iscsi_sim.iscsi.targets() == []
    with pytest.raises(exceptions.NotFound):
        store.get(locate(store, uri))


def test_add_unknown_size(iscsi_sim: Simulator, iscsi_store: Callable[..., Store]) -> None:
    """An upload of unknown size on its first volume (1 GiB). Growing past it (offline,
    resize, online, a new login) is the contract suite's on loop devices: a GiB through the
    hashers takes longer than a case's 300 s under TCG (measured: timed out)."""
    store = iscsi_store()
    data = os.urandom(3 * units.Mi + 1)
    image_id = new_id()
    uri, written, md5, _multihash, _ = store.add(image_id, Source(data), 0, "sha256")
    assert (written, md5) == (len(data), hashlib.md5(data).hexdigest())
    assert stored_ai(iscsi_sim, image_id)["size_gib"] == 1
    assert read_all(store, uri) == (data, len(data))
    store.delete(locate(store, uri))


# ---- linger: back-to-back gets, one login ------------------------------------------------


def test_linger_twenty_gets_one_login(
    iscsi_sim: Simulator, iscsi_store: Callable[..., Store]
) -> None:
    data = os.urandom(units.Mi + 1)
    image_id = new_id()
    writer = iscsi_store()
    uri = writer.add(image_id, Source(data), len(data), "sha256")[0]
    before = logins(iscsi_sim, image_id)["accepts"]
    reader = iscsi_store(attach_linger=60)
    for _ in range(20):
        assert read_all(reader, uri)[0] == data
    assert logins(iscsi_sim, image_id)["accepts"] - before == 1
    assert leftovers()["sessions"] != ""  # lingering between the gets
    reader.close()  # glance-api's shutdown ends the linger
    assert leftovers() == CLEAN
    writer.delete(locate(writer, uri))


# ---- two processes read one image ------------------------------------------------------------


def read_in_process(sim: dict[str, Any], lock_path: str, uri: str) -> str:
    """A second glance-api worker: its own Store (own privsep daemon), the host's records."""
    from tests.plugins.store import make_conf

    load_glance_conf()
    options = {"connector": "iscsi", "initiator_name": None, "attach_linger": 0}
    conf = make_conf(types.SimpleNamespace(**sim), "datera1", lock_path, options)
    store = Store(conf, backend="datera1")
    store.configure(re_raise_bsc=False)
    try:
        return sha256(read_all(store, uri)[0])
    finally:
        store.close()


def test_two_processes_read_one_image(
    iscsi_sim: Simulator, iscsi_store: Callable[..., Store], tmp_path: Any
) -> None:
    data = os.urandom(8 * units.Mi)
    image_id = new_id()
    store = iscsi_store(lock_path=tmp_path / "host-locks")
    uri = store.add(image_id, Source(data), len(data), "sha256")[0]
    sim = {"host": iscsi_sim.host, "port": iscsi_sim.port, "tls": False, "ca_file": None}
    args = (sim, str(tmp_path / "host-locks"), uri)
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        digests = pool.starmap(read_in_process, [args, args])
    assert digests == [sha256(data), sha256(data)]
    store.delete(locate(store, uri))


# ---- CHAP ------------------------------------------------------------------------------------


def test_chap_on_round_trip(iscsi_sim: Simulator, iscsi_store: Callable[..., Store]) -> None:
    """``datera_use_chap``: the target requires CHAP and the Store logs in with it."""
    store = iscsi_store(use_chap=True, chap_key=CHAP_KEY)
    data = os.urandom(2 * units.Mi + 5)
    image_id = new_id()
    uri = store.add(image_id, Source(data), len(data), "sha256")[0]
    assert read_all(store, uri)[0] == data
    iqn = target_iqn(iscsi_sim, image_id)
    with iscsi_sim.cluster.lock:
        ai = next(a for a in iscsi_sim.cluster.state.app_instances.values() if a.uuid == image_id)
        assert ai.storage_instances[0].auth["type"] == "chap"
    assert iscsi_sim.iscsi is not None
    tpg = iscsi_sim.iscsi.login_stats(iqn)
    assert tpg["accepts"] >= 2 and tpg["authenticate_fails"] == 0
    store.delete(locate(store, uri))


@pytest.fixture
def brick() -> Iterator[Any]:
    """os-brick's ISCSIConnector as the Store builds it (privsep through glance-rootwrap)."""
    import os_brick
    from os_brick.initiator import connector
    from oslo_config import cfg
    from oslo_privsep import priv_context

    os_brick.setup(cfg.CONF)
    priv_context.init(root_helper=shlex.split(ROOT_HELPER))
    yield connector.InitiatorConnector.factory(
        "ISCSI", ROOT_HELPER, use_multipath=False, device_scan_attempts=3
    )


def online_image(sim: Simulator, initiator: str | None, chap: tuple[str, str] | None) -> str:
    """An app instance made through the EDF API, with this host in its ACL (or not)."""
    client = EdfClient(ClientConfig(host=sim.host, port=sim.port, username="admin",
                                    password="password", ssl=False))  # fmt: skip
    try:
        ai = client.create_app_instance(f"OS-IMAGE-{new_id()}", uuid=new_id(), size_gib=1)
        if initiator:
            init = client.ensure_initiator(initiator, "lane-host")
            client.add_acl_initiator(ai.id, init.path)
        if chap:
            client.set_chap(ai.id, *chap)
        return str(ai.id)
    finally:
        client.close()


def this_host_iqn() -> str:
    with open("/etc/iscsi/initiatorname.iscsi", encoding="utf-8") as f:
        return next(
            line.split("=", 1)[1].strip() for line in f if line.startswith("InitiatorName=")
        )


def props(sim: Simulator, ai_id: str, chap: tuple[str, str] | None) -> dict[str, Any]:
    si = sim.cluster.state.app_instances[ai_id].storage_instances[0]
    out: dict[str, Any] = {"target_portal": f"{si.ips[0]}:3260", "target_iqn": si.iqn,
                           "target_lun": 0, "target_discovered": False}  # fmt: skip
    if chap:
        out.update(auth_method="CHAP", auth_username=chap[0], auth_password=chap[1])
    return out


def drop(sim: Simulator, ai_id: str) -> None:
    client = EdfClient(ClientConfig(host=sim.host, port=sim.port, username="admin",
                                    password="password", ssl=False))  # fmt: skip
    try:
        client.delete_app_instance(ai_id, force=True)
    finally:
        client.close()


def test_wrong_chap_secret_is_refused_by_the_target(iscsi_sim: Simulator, brick: Any) -> None:
    """The target, not the driver, refuses a wrong secret (LIO counts an authenticate
    failure); the right one logs in, so the refusal was the secret's."""
    chap = ("glance-lane-user", "right-secret-16c")
    ai_id = online_image(iscsi_sim, this_host_iqn(), chap)
    iqn = iscsi_sim.cluster.state.app_instances[ai_id].storage_instances[0].iqn
    assert iscsi_sim.iscsi is not None
    try:
        with pytest.raises(Exception) as refused:
            brick.connect_volume(props(iscsi_sim, ai_id, (chap[0], "wrong-secret-16c")))
        assert "wrong-secret" not in str(refused.value)
        stats = iscsi_sim.iscsi.login_stats(iqn)
        assert stats["authenticate_fails"] >= 1 and stats["accepts"] == 0
        assert leftovers()["sessions"] == ""
        right = props(iscsi_sim, ai_id, chap)
        info = brick.connect_volume(right)
        try:
            assert iscsi_sim.iscsi.login_stats(iqn)["accepts"] == 1
        finally:
            brick.disconnect_volume(right, info, force=True)
    finally:
        drop(iscsi_sim, ai_id)


def test_initiator_not_in_the_acl_is_refused(iscsi_sim: Simulator, brick: Any) -> None:
    """EDF's rule: only initiators in the storage instance's ACL log in."""
    ai_id = online_image(iscsi_sim, None, None)
    iqn = iscsi_sim.cluster.state.app_instances[ai_id].storage_instances[0].iqn
    assert iscsi_sim.iscsi is not None
    try:
        with pytest.raises(Exception):  # noqa: B017 - os-brick's own exception types
            brick.connect_volume(props(iscsi_sim, ai_id, None))
        stats = iscsi_sim.iscsi.login_stats(iqn)
        assert stats["accepts"] == 0 and stats["authorize_fails"] >= 1
    finally:
        drop(iscsi_sim, ai_id)


# ---- multipath (runs last: it starts multipathd) --------------------------------------------


@pytest.fixture
def multipathd() -> Iterator[None]:
    """multipathd, as a host with ``datera_use_multipath`` runs it."""
    subprocess.run(["multipathd"], check=True)  # daemonizes
    deadline = time.monotonic() + 60
    while subprocess.run(["multipathd", "show", "status"], capture_output=True).returncode:
        assert time.monotonic() < deadline, "multipathd did not start"
        time.sleep(0.5)
    try:
        yield
    finally:
        subprocess.run(["multipathd", "shutdown"], check=False, capture_output=True)


def test_multipath_read_survives_a_stopped_portal(
    iscsi_sim: Simulator, iscsi_store: Callable[..., Store], multipathd: None
) -> None:
    """``datera_use_multipath``: a dm-multipath device over both portals of ``access.ips``;
    one portal's target stops mid-read and the read completes with the right bytes."""
    from datera_glance.attach.connectors import strategy_for

    checks = {p.name: p for p in strategy_for("iscsi", True, ROOT_HELPER).prerequisites(None)}
    assert checks["multipathd running"].ok, checks["multipathd running"]
    store = iscsi_store(use_multipath=True)
    data = os.urandom(24 * units.Mi)
    image_id = new_id()
    uri = store.add(image_id, Source(data), len(data), "sha256")[0]
    assert iscsi_sim.iscsi is not None
    pieces = iter(store.get(locate(store, uri))[0])
    got = [next(pieces)]
    during = leftovers()
    assert during["dm"] and len(during["sessions"].splitlines()) == 2, during
    iscsi_sim.iscsi.stop_portal("127.0.0.2")
    try:
        got.extend(pieces)
    finally:
        iscsi_sim.iscsi.start_portal("127.0.0.2")
    assert b"".join(got) == data
    store.delete(locate(store, uri))
