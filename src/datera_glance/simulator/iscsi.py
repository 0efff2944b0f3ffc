"""Real iSCSI targets (``--iscsi``): each online storage instance is served by the kernel's
iSCSI target (LIO, configured through configfs) with the IQN, LUN and portals its ``access``
shows, an ACL made of its ``acl_policy`` initiators and CHAP from its ``auth``.

EDF's rules stay the rules here: a target exists only while its app instance is online (it
appears in ``Cluster.attach`` and goes in ``Cluster.detach``); with ``access_control_mode``
``deny_all`` (EDF's default) only initiators of the ACL log in; with ``auth`` type ``chap`` an
initiator logs in only with ``target_user_name``/``target_pswd`` (the credentials Datera's
Cinder driver sets and hands to os-brick as ``auth_username``/``auth_password``). ``mchap``
adds ``initiator_user_name``/``initiator_pswd`` as the target's own (mutual) credentials: an
assumption, the schema does not say which side each pair is.

The volume is LUN 0 (Datera's Cinder driver connects ``target_lun = 0``). That is why LIO and
not ``tgtd``: tgtd keeps LUN 0 for its own controller device and refuses a backing store
there. The volume file is exported with LIO's ``fileio`` backstore (unit serial = the volume's
uuid, so every path shows the same disk). Each portal of ``access.ips`` is a target portal
group of its own, so one portal can be stopped (``stop_portal``) while the others serve: what
a multipath reader must survive.

Needs root, configfs and the ``target_core_file`` and ``iscsi_target_mod`` modules
(``prepare``). The lane in ``tests/iscsi`` runs it inside a qemu guest.
"""

from __future__ import annotations

import errno
import logging
import os
import subprocess
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from datera_glance.simulator.media import MediaError, Runner, run_command
from datera_glance.simulator.model import AppInstance, StorageInstance

LOG = logging.getLogger(__name__)

CONFIGFS_TARGET = Path("/sys/kernel/config/target")
ISCSI_PORT = 3260
DEFAULT_PORTALS = ("127.0.0.1", "127.0.0.2")
_HBA = "core/fileio_0"  # LIO's backstores of files
_LUN = "lun_0"
_CLEARED = "NULL"  # what LIO takes to clear a CHAP attribute


class TargetError(MediaError):
    """A target could not be made, changed or removed (a failed online answers 500)."""


class ConfigFs:
    """The configfs operations LIO needs, relative to its ``target`` directory.

    Values are written without a newline: LIO keeps CHAP names and secrets byte for byte.
    """

    def __init__(self, root: Path = CONFIGFS_TARGET) -> None:
        self.root = root

    def exists(self, path: str) -> bool:
        return (self.root / path).exists()

    def mkdir(self, path: str) -> None:
        (self.root / path).mkdir(parents=True, exist_ok=True)

    def write(self, path: str, value: str) -> None:
        with open(self.root / path, "w", encoding="ascii") as f:
            f.write(value)

    def link(self, target: str, path: str) -> None:
        if not os.path.islink(self.root / path):
            os.symlink(self.root / target, self.root / path)

    def links(self, path: str) -> list[str]:
        """The symbolic links in ``path`` (not its attribute files or default groups)."""
        return [n for n in self.listdir(path) if os.path.islink(self.root / path / n)]

    def listdir(self, path: str) -> list[str]:
        try:
            return sorted(os.listdir(self.root / path))
        except FileNotFoundError:
            return []

    def unlink(self, path: str) -> None:
        os.unlink(self.root / path)

    def rmdir(self, path: str) -> None:
        os.rmdir(self.root / path)


@dataclass
class _Served:
    """What a storage instance's target was last given (changes are applied as differences)."""

    iqn: str
    backstores: list[str]
    acl: dict[str, dict[str, str]] = field(default_factory=dict)  # initiator iqn -> auth
    mode: str = ""
    chap: bool = False


class LioTargets:
    """Serve online storage instances as LIO iSCSI targets on ``portals``.

    :param portals: the addresses every target listens on (what ``access.ips`` reports).
    :param fs: configfs (tests pass a plain directory's).
    :param run: runs ``modprobe`` and ``mount`` in ``prepare``.
    """

    def __init__(
        self,
        portals: Sequence[str] = DEFAULT_PORTALS,
        *,
        fs: ConfigFs | None = None,
        run: Runner = run_command,
    ) -> None:
        if not portals:
            raise ValueError("an iSCSI target needs at least one portal")
        self.portals = tuple(portals)
        self._fs = fs or ConfigFs()
        self._run = run
        self._served: dict[str, _Served] = {}  # storage instance uuid -> what it got
        self._stopped: set[str] = set()

    def prepare(self) -> None:
        """Load LIO's modules and mount configfs if needed (root)."""
        try:
            self._run(["modprobe", "-a", "target_core_file", "iscsi_target_mod"])
            if not self._fs.exists("iscsi"):
                if not self._fs.root.parent.joinpath("target").exists():
                    self._run(["mount", "-t", "configfs", "configfs", str(self._fs.root.parent)])
                self._fs.mkdir("iscsi")  # configfs registers the iSCSI fabric on mkdir
        except (subprocess.CalledProcessError, OSError) as exc:
            raise TargetError(f"the kernel's iSCSI target is not available: {exc}") from exc

    # ---- what the cluster calls --------------------------------------------------------

    def serve(self, ai: AppInstance) -> None:
        """Make (or bring up to date) the targets of ``ai``'s storage instances."""
        for si in ai.storage_instances:
            if si.volumes:
                self._guarded(f"serving {si.iqn}", self._serve, si)

    def remove(self, ai: AppInstance) -> None:
        """Remove ``ai``'s targets: their sessions end (offline, delete, stop)."""
        for si in ai.storage_instances:
            self._guarded(f"removing {si.iqn}", self._remove, si)

    def stop_portal(self, ip: str) -> None:
        """Stop serving on ``ip`` (every target; sessions on it end) until ``start_portal``."""
        self._set_portal(ip, enabled=False)

    def start_portal(self, ip: str) -> None:
        self._set_portal(ip, enabled=True)

    def login_stats(self, iqn: str) -> dict[str, int]:
        """The kernel target's login counters of ``iqn``: ``accepts``, ``authenticate_fails``
        (a wrong CHAP secret), ``authorize_fails`` (an initiator not in the ACL), ..."""
        stats = f"iscsi/{iqn}/fabric_statistics/iscsi_login_stats"
        return {
            name: int(read_text(self._fs.root / stats / name))
            for name in ("accepts", "authenticate_fails", "authorize_fails", "negotiate_fails")
        }

    def targets(self) -> list[str]:
        """The IQNs served now, as the kernel lists them."""
        return [name for name in self._fs.listdir("iscsi") if name.startswith("iqn.")]

    # ---- inside ------------------------------------------------------------------------

    @staticmethod
    def _guarded(action: str, fn: Callable[[StorageInstance], None], si: StorageInstance) -> None:
        try:
            fn(si)
        except OSError as exc:
            raise TargetError(f"{action}: {exc}") from exc

    def _tpgs(self, iqn: str) -> list[tuple[str, str]]:
        """(tpg directory, portal ip) per portal: ``iscsi/<iqn>/tpgt_<n>``."""
        return [(f"iscsi/{iqn}/tpgt_{n}", ip) for n, ip in enumerate(self.portals, 1)]

    def _serve(self, si: StorageInstance) -> None:
        served = self._served.get(si.uuid)
        if served is None:
            self._remove(si)  # what a crashed simulator left under this IQN
            served = self._create(si)
            self._served[si.uuid] = served
        self._sync(si, served)

    def _create(self, si: StorageInstance) -> _Served:
        vol = si.volumes[0]
        store = f"{_HBA}/{vol.uuid}"
        self._fs.mkdir(store)
        size = os.stat(vol.file).st_size
        self._fs.write(f"{store}/control", f"fd_dev_name={vol.file},fd_dev_size={size}")
        self._fs.write(f"{store}/enable", "1")
        self._fs.write(f"{store}/wwn/vpd_unit_serial", vol.uuid)  # before any export
        for tpg, ip in self._tpgs(si.iqn):
            self._fs.mkdir(f"{tpg}/lun/{_LUN}")
            self._fs.link(store, f"{tpg}/lun/{_LUN}/volume")
            self._fs.mkdir(f"{tpg}/np/{ip}:{ISCSI_PORT}")
            self._fs.write(f"{tpg}/attrib/demo_mode_write_protect", "0")
        LOG.info("iSCSI target %s serves %s on %s", si.iqn, vol.file, ", ".join(self.portals))
        return _Served(iqn=si.iqn, backstores=[store])

    def _sync(self, si: StorageInstance, served: _Served) -> None:
        """Apply the differences between the storage instance and what its target has."""
        mode, chap = si.access_control_mode, si.auth.get("type", "none") != "none"
        acl = {p.rsplit("/", 1)[-1]: _chap_attributes(si.auth) for p in si.acl_initiators}
        if mode == served.mode and chap == served.chap and acl == served.acl:
            return
        open_to_all = "1" if mode == "allow_all" else "0"
        for tpg, ip in self._tpgs(si.iqn):
            self._fs.write(f"{tpg}/attrib/generate_node_acls", open_to_all)
            self._fs.write(f"{tpg}/attrib/cache_dynamic_acls", open_to_all)
            self._fs.write(f"{tpg}/attrib/authentication", "1" if chap else "0")
            for initiator in self._fs.listdir(f"{tpg}/acls"):
                if initiator not in acl:
                    self._remove_acl(tpg, initiator)
            for initiator, auth in acl.items():
                self._fs.mkdir(f"{tpg}/acls/{initiator}/{_LUN}")
                self._fs.link(f"{tpg}/lun/{_LUN}", f"{tpg}/acls/{initiator}/{_LUN}/{_LUN}")
                for name, value in auth.items():
                    self._fs.write(f"{tpg}/acls/{initiator}/auth/{name}", value)
            self._fs.write(f"{tpg}/enable", "0" if ip in self._stopped else "1")
        served.mode, served.chap, served.acl = mode, chap, acl

    def _remove_acl(self, tpg: str, initiator: str) -> None:
        node = f"{tpg}/acls/{initiator}"
        for mapped in self._fs.listdir(node):
            if mapped.startswith("lun_"):
                for link in self._fs.links(f"{node}/{mapped}"):
                    _ignore_missing(self._fs.unlink, f"{node}/{mapped}/{link}")
                _ignore_missing(self._fs.rmdir, f"{node}/{mapped}")
        _ignore_missing(self._fs.rmdir, node)

    def _remove(self, si: StorageInstance) -> None:
        served = self._served.pop(si.uuid, None)
        iqn = served.iqn if served else si.iqn
        for tpg in (f"iscsi/{iqn}/{t}" for t in self._fs.listdir(f"iscsi/{iqn}")):
            if not tpg.rsplit("/", 1)[-1].startswith("tpgt_"):
                continue
            if self._fs.exists(f"{tpg}/enable"):
                self._fs.write(f"{tpg}/enable", "0")  # ends its sessions
            for initiator in self._fs.listdir(f"{tpg}/acls"):
                self._remove_acl(tpg, initiator)
            for lun in self._fs.listdir(f"{tpg}/lun"):
                for link in self._fs.links(f"{tpg}/lun/{lun}"):
                    self._fs.unlink(f"{tpg}/lun/{lun}/{link}")
                self._fs.rmdir(f"{tpg}/lun/{lun}")
            for portal in self._fs.listdir(f"{tpg}/np"):
                self._fs.rmdir(f"{tpg}/np/{portal}")
            self._fs.rmdir(tpg)
        if self._fs.exists(f"iscsi/{iqn}"):
            self._fs.rmdir(f"iscsi/{iqn}")
            LOG.info("iSCSI target %s removed", iqn)
        stores = served.backstores if served else [f"{_HBA}/{v.uuid}" for v in si.volumes]
        for store in stores:
            if self._fs.exists(store):
                self._fs.rmdir(store)

    def _set_portal(self, ip: str, *, enabled: bool) -> None:
        if ip not in self.portals:
            raise ValueError(f"{ip} is not a portal of this simulator ({', '.join(self.portals)})")
        (self._stopped.discard if enabled else self._stopped.add)(ip)
        for served in self._served.values():
            for tpg, portal in self._tpgs(served.iqn):
                if portal == ip:
                    self._fs.write(f"{tpg}/enable", "1" if enabled else "0")
        LOG.info("iSCSI portal %s %s", ip, "started" if enabled else "stopped")


def read_text(path: Path) -> str:
    with open(path, encoding="ascii") as f:
        return f.read().strip()


def _chap_attributes(auth: dict[str, str]) -> dict[str, str]:
    """An ACL node's ``auth/`` attributes for a storage instance's ``auth``."""
    kind = auth.get("type", "none")
    out = {"userid": _CLEARED, "password": _CLEARED}
    out |= {"userid_mutual": _CLEARED, "password_mutual": _CLEARED}
    if kind in ("chap", "mchap"):
        out |= {"userid": auth["target_user_name"], "password": auth["target_pswd"]}
    if kind == "mchap":
        out["userid_mutual"] = auth["initiator_user_name"]
        out["password_mutual"] = auth["initiator_pswd"]
    return out


def _ignore_missing(fn: Callable[[str], None], path: str) -> None:
    try:
        fn(path)
    except OSError as exc:
        if exc.errno != errno.ENOENT:
            raise


def portals_of(value: str | Iterable[str] | None) -> tuple[str, ...]:
    """``--iscsi-portals 127.0.0.1,127.0.0.2`` -> the tuple; None -> the default two."""
    if value is None:
        return DEFAULT_PORTALS
    items = value.split(",") if isinstance(value, str) else list(value)
    return tuple(p.strip() for p in items if p.strip())
