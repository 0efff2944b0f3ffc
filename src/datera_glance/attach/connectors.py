"""Connector strategies: how one kind of connection attaches a storage instance.

Chosen once per attacher by ``strategy_for`` from ``datera_connector`` and
``datera_use_multipath`` (the way glance_store's cinder store maps a protocol to its
connector class in ``glance_store/_drivers/cinder/base.py``): ``LocalStrategy`` (os-brick's
LOCAL connector on the simulator's device path), ``IscsiStrategy`` (one portal) and
``IscsiMultipathStrategy`` (every portal of ``access.ips``, a dm-multipath device). A strategy
owns its os-brick connector (built once), the connection properties, how a record's device is
recognised as an app instance's (from the cluster's view at attach, from the host's own view
when reclaiming stale attachments) and what the host needs for it (``check``). Nothing else
tests the connector kind.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import re
import shutil
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from datera_glance.attach.devices import init_privsep
from datera_glance.attach.errors import AttachError, host_errors
from datera_glance.attach.records import AttachedDevice
from datera_glance.host import running

if TYPE_CHECKING:
    from datera_glance.edf import models

ISCSI_PORT = 3260
BY_PATH_DIR = "/dev/disk/by-path"  # where udev links iSCSI LUNs (os-brick looks there too)
INITIATOR_FILE = "/etc/iscsi/initiatorname.iscsi"
SYS_BLOCK_DIR = "/sys/class/block"
MULTIPATHD_PID_FILE = "/run/multipathd.pid"  # multipathd writes it while it runs
# An iSCSI name as EDF and iscsiadm take it (RFC 3720 iqn./eui. forms).
ISCSI_NAME = re.compile(r"(iqn\.\d{4}-\d{2}\.[a-z0-9.-]+(:[^\s]+)?|eui\.[0-9A-Fa-f]{16})")


class Connector(Protocol):
    """The part of an os-brick ``InitiatorConnector`` this package uses."""

    def get_connector_properties(
        self, root_helper: str, *args: Any, **kwargs: Any
    ) -> dict[str, Any]: ...

    def connect_volume(self, connection_properties: dict[str, Any]) -> dict[str, Any]: ...

    def disconnect_volume(
        self,
        connection_properties: dict[str, Any],
        device_info: dict[str, Any],
        force: bool = False,
        ignore_errors: bool = False,
    ) -> None: ...


#: ``(protocol, root_helper) -> Connector``; protocol is os-brick's ``"ISCSI"`` or ``"LOCAL"``.
ConnectorFactory = Callable[[str, str], Connector]


def os_brick_connector_factory(
    protocol: str, root_helper: str, *, use_multipath: bool = False
) -> Connector:
    """Build a real os-brick connector. The iSCSI connector runs its commands in os-brick's
    privsep daemon, started through ``root_helper``; LOCAL runs no commands."""
    if protocol == "LOCAL":
        # Imported directly: os-brick's connector module imports every connector type.
        from os_brick.initiator.connectors.local import LocalConnector

        local: Connector = LocalConnector(root_helper)
        return local

    import os_brick
    from os_brick.initiator import connector as brick_connector
    from oslo_config import cfg

    init_privsep(root_helper, before=lambda: os_brick.setup(cfg.CONF))
    conn: Connector = brick_connector.InitiatorConnector.factory(
        protocol, root_helper, use_multipath=use_multipath, device_scan_attempts=10
    )
    return conn


@dataclass(frozen=True)
class Prerequisite:
    """One thing this host needs for the strategy (``datera-glance check`` shows it)."""

    name: str
    ok: bool
    detail: str
    fix: str = ""


def _on_path(command: str, fix: str) -> Prerequisite:
    found = shutil.which(command)
    return (
        Prerequisite(command, True, found)
        if found
        else Prerequisite(command, False, "not found on PATH", fix)
    )


class ConnectorStrategy:
    """How one kind of connection attaches (subclasses fill in the blanks).

    :param root_helper: ``sudo glance-rootwrap <config>``.
    :param factory: builds the os-brick connector (tests inject a fake); default: the real one.
    :param by_path_dir: where udev links iSCSI LUNs (tests use their own directory).
    """

    name: ClassVar[str]
    protocol: ClassVar[str]  # os-brick's
    use_multipath: ClassVar[bool] = False
    uses_chap: ClassVar[bool] = False  # datera_use_chap applies
    needs_root_helper: ClassVar[bool] = False  # runs privileged commands even as root

    def __init__(
        self,
        root_helper: str,
        factory: ConnectorFactory | None = None,
        *,
        by_path_dir: str = BY_PATH_DIR,
    ) -> None:
        self.root_helper = root_helper
        self._factory = factory or functools.partial(
            os_brick_connector_factory, use_multipath=self.use_multipath
        )
        self.by_path_dir = by_path_dir
        self._connector: Connector | None = None
        self._lock = threading.Lock()

    def connector(self) -> Connector:
        """The os-brick connector, built at first use (``AttachError`` if it cannot be)."""
        with self._lock:
            if self._connector is None:
                with host_errors("starting os-brick"):
                    self._connector = self._factory(self.protocol, self.root_helper)
            return self._connector

    def initiator_iqn(self, configured: str | None) -> str:
        """This host's initiator name: os-brick's, else ``datera_initiator_name``."""
        with host_errors("reading this host's initiator name"):
            props = self.connector().get_connector_properties(self.root_helper)
        iqn = props.get("initiator") or configured
        return str(iqn) if iqn else self.missing_initiator()

    def missing_initiator(self) -> str:
        raise AttachError(
            "this host has no iSCSI initiator name (/etc/iscsi/initiatorname.iscsi is missing): "
            "install open-iscsi or set datera_initiator_name"
        )

    def properties(
        self, si: models.StorageInstance, chap: tuple[str, str] | None
    ) -> dict[str, Any]:
        """os-brick connection properties for ``si`` (with the CHAP credentials, if any)."""
        raise NotImplementedError

    def is_device_of(self, device: AttachedDevice, si: models.StorageInstance) -> bool:
        """Is a record's device ``si``'s, by what the cluster says of ``si`` now?"""
        raise NotImplementedError

    def still_attached(self, device: AttachedDevice) -> bool:
        """Does the host itself still show a record's device as what its properties
        connected? Only then may reclaiming (no cluster) hand them to os-brick's disconnect."""
        raise NotImplementedError

    def prerequisites(self, configured_initiator: str | None) -> Iterator[Prerequisite]:
        raise NotImplementedError


class LocalStrategy(ConnectorStrategy):
    """os-brick's LOCAL connector on the device path the Datera EDF simulator reports."""

    name = "local"
    protocol = "LOCAL"

    def missing_initiator(self) -> str:
        # The simulator accepts any name; a real cluster needs the host's own.
        return f"iqn.2010-10.org.openstack:glance-{socket.gethostname()}"

    def properties(
        self, si: models.StorageInstance, chap: tuple[str, str] | None
    ) -> dict[str, Any]:
        if not si.device_path:
            raise AttachError(
                f"storage instance {si.path} reports no device_path: the local connector "
                "only works with the Datera EDF simulator"
            )
        return {"device_path": si.device_path}

    def is_device_of(self, device: AttachedDevice, si: models.StorageInstance) -> bool:
        return bool(si.device_path) and device.path == si.device_path == device.props.get(
            "device_path"
        )

    def still_attached(self, device: AttachedDevice) -> bool:
        return True  # LOCAL's disconnect runs nothing

    def prerequisites(self, configured_initiator: str | None) -> Iterator[Prerequisite]:
        yield Prerequisite("connector", True, f"{self.name}: no iSCSI prerequisites")


class IscsiStrategy(ConnectorStrategy):
    """os-brick's iSCSI connector on the first portal of the storage instance's access."""

    name = "iscsi"
    protocol = "ISCSI"
    uses_chap = True
    needs_root_helper = True

    def properties(
        self, si: models.StorageInstance, chap: tuple[str, str] | None
    ) -> dict[str, Any]:
        portals = iscsi_portals(si)
        props: dict[str, Any] = {
            "target_portal": portals[0],
            "target_iqn": si.iqn,
            "target_lun": 0,
            "target_discovered": False,
            "discard": False,
        }
        if chap is not None:
            props.update(auth_method="CHAP", auth_username=chap[0], auth_password=chap[1])
        return props

    def is_device_of(self, device: AttachedDevice, si: models.StorageInstance) -> bool:
        portal = device.props.get("target_portal")
        if device.props.get("target_iqn") != si.iqn or portal not in _portals(si):
            return False
        return self._linked(device, str(portal))

    def still_attached(self, device: AttachedDevice) -> bool:
        portal = device.props.get("target_portal")
        return isinstance(portal, str) and self._linked(device, portal)

    def _linked(self, device: AttachedDevice, portal: str) -> bool:
        """udev's link of the LUN at ``portal`` leads to the record's device (and that
        device still has the number recorded)."""
        iqn = device.props.get("target_iqn")
        if not isinstance(iqn, str) or not ISCSI_NAME.fullmatch(iqn):
            return False
        real = os.path.realpath(os.path.join(self.by_path_dir, f"ip-{portal}-iscsi-{iqn}-lun-0"))
        return real == os.path.realpath(device.path) and _rdev_matches(device)

    def prerequisites(self, configured_initiator: str | None) -> Iterator[Prerequisite]:
        yield _on_path("iscsiadm", "install open-iscsi")
        yield initiator_prerequisite(configured_initiator)
        yield _on_path("privsep-helper", "install oslo.privsep with os-brick")


class IscsiMultipathStrategy(IscsiStrategy):
    """os-brick's iSCSI connector with multipath on every portal of the access: one
    dm-multipath device over a path per portal (``datera_use_multipath``)."""

    name = "iscsi-multipath"
    use_multipath = True

    def properties(
        self, si: models.StorageInstance, chap: tuple[str, str] | None
    ) -> dict[str, Any]:
        props = super().properties(si, chap)
        portals = iscsi_portals(si)
        props.update(
            target_portals=portals,
            target_iqns=[si.iqn] * len(portals),
            target_luns=[0] * len(portals),
        )
        return props

    def is_device_of(self, device: AttachedDevice, si: models.StorageInstance) -> bool:
        portals = device.props.get("target_portals")
        if device.props.get("target_iqn") != si.iqn or not isinstance(portals, list):
            return False
        return set(portals) <= _portals(si) and self.still_attached(device)

    def still_attached(self, device: AttachedDevice) -> bool:
        """The dm device is built on the LUN of one of the recorded portals."""
        portals = device.props.get("target_portals")
        if not isinstance(portals, list) or not _rdev_matches(device):
            return False
        dm = os.path.basename(os.path.realpath(device.path))
        try:
            slaves = set(os.listdir(os.path.join(SYS_BLOCK_DIR, dm, "slaves")))
        except OSError:
            return False
        iqn = device.props.get("target_iqn")
        if not isinstance(iqn, str) or not ISCSI_NAME.fullmatch(iqn):
            return False
        for portal in portals:
            link = os.path.join(self.by_path_dir, f"ip-{portal}-iscsi-{iqn}-lun-0")
            if os.path.basename(os.path.realpath(link)) in slaves:
                return True
        return False

    def prerequisites(self, configured_initiator: str | None) -> Iterator[Prerequisite]:
        yield from super().prerequisites(configured_initiator)
        yield _on_path("multipathd", "install multipath-tools and start multipathd")
        yield multipathd_running()


def multipathd_running(pid_file: str = MULTIPATHD_PID_FILE) -> Prerequisite:
    """Is multipathd running? os-brick's multipath attach waits for the dm device multipathd
    makes. Asked by its pid file: glance's user needs no privilege for that."""
    fix = "start multipathd (systemctl enable --now multipathd)"
    try:
        with open(pid_file, encoding="ascii") as f:
            pid = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return Prerequisite("multipathd running", False, f"no pid in {pid_file}", fix)
    if not running(pid):
        return Prerequisite("multipathd running", False, f"pid {pid} ({pid_file}) is gone", fix)
    return Prerequisite("multipathd running", True, f"pid {pid}")


_STRATEGIES: dict[tuple[str, bool], type[ConnectorStrategy]] = {
    ("local", False): LocalStrategy,
    ("local", True): LocalStrategy,  # one device path: nothing to multiplex
    ("iscsi", False): IscsiStrategy,
    ("iscsi", True): IscsiMultipathStrategy,
}


def strategy_for(
    connector: str,
    use_multipath: bool,
    root_helper: str,
    factory: ConnectorFactory | None = None,
    *,
    by_path_dir: str = BY_PATH_DIR,
) -> ConnectorStrategy:
    """The strategy of ``datera_connector`` (and ``datera_use_multipath``)."""
    try:
        cls = _STRATEGIES[(connector, use_multipath)]
    except KeyError:
        raise AttachError(f"datera_connector {connector!r} is not one of iscsi, local") from None
    return cls(root_helper, factory, by_path_dir=by_path_dir)


def iscsi_portals(si: models.StorageInstance) -> list[str]:
    """``ip:3260`` of each address of ``si``'s access; AttachError if it has none or any
    address or the IQN is not what EDF's schema allows (they reach iscsiadm's arguments)."""
    if not si.ips or not si.iqn:
        raise AttachError(f"storage instance {si.path} has no iSCSI access (ips/iqn)")
    if not ISCSI_NAME.fullmatch(si.iqn):
        raise AttachError(f"storage instance {si.path} reports a bad IQN {si.iqn!r}")
    portals = []
    for ip in si.ips:
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            raise AttachError(f"storage instance {si.path} reports a bad address {ip!r}") from None
        host = f"[{address}]" if address.version == 6 else str(address)
        portals.append(f"{host}:{ISCSI_PORT}")
    return portals


def iscsi_properties(
    si: models.StorageInstance, chap: tuple[str, str] | None = None
) -> dict[str, Any]:
    """os-brick ISCSI connection properties for a storage instance's ``access``."""
    return IscsiStrategy("").properties(si, chap)


def _portals(si: models.StorageInstance) -> set[str]:
    try:
        return set(iscsi_portals(si))
    except AttachError:
        return set()


def _rdev_matches(device: AttachedDevice) -> bool:
    if device.rdev is None:
        return True  # a record of a non-block "device" (a test's file): nothing to lend
    try:
        return os.stat(device.path).st_rdev == device.rdev
    except OSError:
        return False


def initiator_prerequisite(
    configured: str | None, initiator_file: str = INITIATOR_FILE
) -> Prerequisite:
    """The host's initiator name: the file open-iscsi writes, else the option."""
    try:
        with open(initiator_file, encoding="utf-8") as f:
            names = [ln.split("=", 1)[1].strip() for ln in f if ln.startswith("InitiatorName=")]
    except OSError:
        names = []
    if names:
        return Prerequisite("initiator", True, f"{names[0]} ({initiator_file})")
    if configured:
        return Prerequisite("initiator", True, f"{configured} (datera_initiator_name)")
    return Prerequisite(
        "initiator",
        False,
        f"no {initiator_file} and no datera_initiator_name",
        "install open-iscsi or set datera_initiator_name",
    )
