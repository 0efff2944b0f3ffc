"""Guest-only fixtures of the iSCSI lane (``tests/iscsi/guest.sh`` runs these, as root, inside
the qemu guest): one simulator serving real iSCSI targets for the session, Stores configured
as on a glance-api host (``datera_connector = iscsi``, glance's rootwrap and privsep), and after
every case the check that no iSCSI session, SCSI disk or dm device is left.
"""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from oslo_config import cfg

from datera_glance.simulator import Simulator
from datera_glance.store import Store
from tests.plugins.store import StoreFactory

LOG = logging.getLogger(__name__)
GLANCE_API_CONF = "/etc/glance/glance-api.conf"  # guest.sh writes it (the guest's /etc)


def guest_only() -> None:
    if os.environ.get("DATERA_GLANCE_ISCSI_GUEST") != "1" or os.geteuid() != 0:
        pytest.exit("tests/iscsi/guest runs only inside the iSCSI lane's guest", returncode=4)


def load_glance_conf() -> None:
    """glance-api parses its configuration file into the global CONF; privsep passes that
    file to ``privsep-helper`` (the shipped rootwrap filter wants ``--config-file /etc/...``)."""
    try:
        loaded = bool(cfg.CONF.config_file)
    except cfg.NoSuchOptError:  # CONF not parsed yet
        loaded = False
    if not loaded:
        cfg.CONF(["--config-file", GLANCE_API_CONF], project="glance")


def sessions() -> str:
    """``iscsiadm -m session``'s listing; "" when there is none (exit status 21)."""
    proc = subprocess.run(["iscsiadm", "-m", "session"], capture_output=True, text=True)
    if proc.returncode == 21:
        return ""
    return proc.stdout.strip() or proc.stderr.strip()


def scsi_disks() -> list[str]:
    try:
        return sorted(os.listdir("/sys/class/scsi_disk"))
    except FileNotFoundError:  # no SCSI disk driver loaded yet
        return []


def dm_devices() -> list[str]:
    return sorted(n for n in os.listdir("/sys/class/block") if n.startswith("dm-"))


def leftovers() -> dict[str, Any]:
    """What an attachment leaves on the host: sessions, SCSI disks, device-mapper devices."""
    return {"sessions": sessions(), "scsi_disks": scsi_disks(), "dm": dm_devices()}


CLEAN: dict[str, Any] = {"sessions": "", "scsi_disks": [], "dm": []}


def pytest_configure(config: pytest.Config) -> None:
    guest_only()
    load_glance_conf()
    # oslo.privsep's daemon start leaves its stderr logger's pipe (_fd_logger) to the garbage
    # collector: ResourceWarnings of oslo_privsep/daemon.py, not ours (the suite makes them
    # errors). Only real privsep daemons start here, so only here are they silenced.
    config.addinivalue_line("filterwarnings", "ignore:unclosed file <_io.:ResourceWarning")
    config.addinivalue_line(
        "filterwarnings",
        "ignore:Exception ignored in. <_io.FileIO name=:pytest.PytestUnraisableExceptionWarning",
    )


@pytest.fixture(scope="session")
def iscsi_sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Simulator]:
    """The simulator with real targets on 127.0.0.1 and 127.0.0.2 (the kernel's LIO)."""
    sim = Simulator(tmp_path_factory.mktemp("edf"), iscsi=True)
    sim.start()
    try:
        yield sim
    finally:
        sim.stop()
    assert sim.iscsi is not None and sim.iscsi.targets() == [], "targets left after stop"


@pytest.fixture(autouse=True)
def nothing_left(iscsi_sim: Simulator) -> Iterator[None]:
    """Every case starts and must end with no session, SCSI disk or dm device."""
    assert leftovers() == CLEAN, "a previous case left these"
    yield
    left = leftovers()
    if left != CLEAN:  # report it, then clean up so that the next case starts clean
        LOG.error("left after the case: %s", left)
        subprocess.run(["iscsiadm", "-m", "node", "--logoutall=all"], capture_output=True)
        subprocess.run(["multipath", "-F"], capture_output=True)
    assert left == CLEAN, f"left after the case: {left}"


@pytest.fixture
def iscsi_store(
    iscsi_sim: Simulator, store_factory: StoreFactory, tmp_path: Path
) -> Callable[..., Store]:
    """``iscsi_store(**options)``: a Store as glance-api builds it, attaching over iSCSI with
    os-brick's ISCSIConnector (privsep started by ``sudo glance-rootwrap``)."""

    def make(**options: Any) -> Store:
        options.setdefault("connector", "iscsi")
        options.setdefault("initiator_name", None)  # the host's own, /etc/iscsi
        options.setdefault("lock_path", tmp_path / "locks")
        return store_factory(iscsi_sim, **options)

    return make


def target_iqn(sim: Simulator, image_id: str) -> str:
    """The IQN the simulator gave the image's storage instance."""
    with sim.cluster.lock:
        for ai in sim.cluster.state.app_instances.values():
            if ai.uuid == image_id:
                return ai.storage_instances[0].iqn
    raise LookupError(image_id)
