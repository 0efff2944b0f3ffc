"""From an app instance to a local block device path, and back.

One host attaches an image's volume once, however many threads and worker processes read it:
users are recorded in a small JSON file per image under ``lock_path``, changed only under an
external (inter-process) lock, and the last user disconnects. Several glance-api hosts share a
cluster, so a user never takes an app instance offline and never removes an ACL entry: a
complete image stays online with the initiators of every host that read it.

A record's device path and owner feed ``sudo glance-rootwrap chown``: records live only in a
directory no other user can write, and a record that does not parse or names a device that is
not its app instance's is ignored (and logged). Failures of os-brick, privsep and rootwrap
are ``AttachError``: their own types mean nothing to glance.

After its last user, an attachment lingers for ``AttachSettings.linger`` seconds (the record
stays, without users), so back-to-back reads of one image attach once. The process that
released it last ends the linger with a timer; a reader that comes meanwhile, from any process,
joins it. ``close()`` (also run at interpreter exit) ends this process's lingers; the records a
crashed process left (no live user, no live linger, or an earlier boot) are detached by
``sweep()`` when the store starts again.
"""

from __future__ import annotations

import atexit
import contextlib
import fnmatch
import hashlib
import hmac
import json
import logging
import os
import re
import shlex
import socket
import stat
import tempfile
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from oslo_concurrency import lockutils
from oslo_utils import strutils

from datera_glance.host import boot_id, running, start_ticks

if TYPE_CHECKING:
    from datera_glance.edf import EdfClient, models

LOG = logging.getLogger(__name__)

ISCSI_PORT = 3260
BY_PATH_DIR = "/dev/disk/by-path"  # where udev links iSCSI LUNs (os-brick looks there too)
# "<pid>:<start ticks>:<uuid4 hex>", see user_token; "<pid>:<uuid4 hex>" from older versions.
_USER_TOKEN = re.compile(r"[0-9]+(:[0-9]+)?:[0-9a-f]{32}")
# Keys of os-brick connection properties that must never reach a file or a log.
_SECRET_KEYS = ("auth_password", "auth_username", "discovery_auth_password")


class AttachError(Exception):
    """The volume could not be attached or detached on this host."""


@contextlib.contextmanager
def _host_errors(action: str, secret: str | None = None) -> Iterator[None]:
    """os-brick, privsep and rootwrap failures (``ProcessExecutionError``, ``BrickException``,
    ``OSError``, ...) -> ``AttachError``, with passwords masked out of the message."""
    try:
        yield
    except AttachError:
        raise
    except Exception as e:
        text = strutils.mask_password(str(e))
        if secret:
            text = text.replace(secret, "***")
        raise AttachError(f"{action} failed: {text}") from e


class Connector(Protocol):
    """The part of an os-brick ``InitiatorConnector`` this module uses."""

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
#: ``processutils.execute``-compatible: ``executor(*cmd, run_as_root=..., root_helper=...)``.
Executor = Callable[..., Any]


class Timer(Protocol):
    """A pending call; ``cancel()`` before it runs prevents it."""

    def cancel(self) -> None: ...


#: ``timer(delay, callback) -> Timer``: run ``callback`` once, ``delay`` seconds from now.
TimerFactory = Callable[[float, Callable[[], None]], Timer]


def thread_timer(delay: float, callback: Callable[[], None]) -> Timer:
    """A daemon ``threading.Timer``: a pending linger never holds up exit (``close()`` runs
    at exit and detaches first)."""
    timer = threading.Timer(delay, callback)
    timer.daemon = True
    timer.start()
    return timer


_privsep_lock = threading.Lock()
_privsep_ready = False


def os_brick_connector_factory(protocol: str, root_helper: str) -> Connector:
    """Build a real os-brick connector.

    The iSCSI connector runs its commands through os-brick's privsep daemon; it is started
    through ``root_helper`` (``sudo glance-rootwrap ...``, whose filters allow
    ``privsep-helper``), as glance's cinder store does. LOCAL runs no commands.
    """
    global _privsep_ready
    if protocol == "LOCAL":
        # Imported directly: os-brick's connector module imports every connector type.
        from os_brick.initiator.connectors.local import LocalConnector

        local: Connector = LocalConnector(root_helper)
        return local

    import os_brick
    from os_brick.initiator import connector as brick_connector
    from oslo_config import cfg
    from oslo_privsep import priv_context

    with _privsep_lock:
        if not _privsep_ready:
            os_brick.setup(cfg.CONF)
            priv_context.init(root_helper=shlex.split(root_helper))
            _privsep_ready = True
    conn: Connector = brick_connector.InitiatorConnector.factory(
        protocol, root_helper, use_multipath=False, device_scan_attempts=10
    )
    return conn


def processutils_executor(*cmd: str, **kwargs: Any) -> Any:
    """Run a command the way glance's cinder store does (rootwrap as root helper)."""
    from oslo_concurrency import processutils

    return processutils.execute(*cmd, **kwargs)


@dataclass(frozen=True)
class AttachSettings:
    """What attaching needs from the store configuration."""

    connector: str  # "iscsi" | "local"
    lock_path: str
    scope: str  # identifies the cluster + tenant; keeps lock files of two backends apart
    initiator_name: str | None = None
    use_chap: bool = False
    chap_key: bytes = field(default=b"", repr=False)  # derives CHAP secrets; never logged
    rootwrap_config: str = "/etc/glance/rootwrap.conf"
    wait_timeout: float = 120.0
    linger: float = 0.0  # seconds an attachment stays after its last user; 0: detach at once

    @property
    def root_helper(self) -> str:
        return f"sudo glance-rootwrap {self.rootwrap_config}"

    @property
    def protocol(self) -> str:
        return "ISCSI" if self.connector == "iscsi" else "LOCAL"


def chap_credentials(key: bytes, ai_uuid: str) -> tuple[str, str]:
    """CHAP user and secret for one app instance.

    Derived (HMAC-SHA256 keyed by the cluster password) rather than random, so every glance-api
    host computes the same credentials without storing or exchanging a secret. 16 characters:
    the longest secret every iSCSI target accepts. EDF shows the user name but never the
    secret, so the user name ends with other bits of the same HMAC: when the password changes
    the name changes too and ``_connect`` knows to set new credentials.
    """
    digest = hmac.new(key, ai_uuid.encode(), hashlib.sha256).hexdigest()
    return f"glance-{ai_uuid.replace('-', '')[:12]}-{digest[-8:]}", digest[:16]


def iscsi_properties(
    si: models.StorageInstance, chap: tuple[str, str] | None = None
) -> dict[str, Any]:
    """os-brick ISCSI connection properties for a storage instance's ``access``."""
    if not si.ips or not si.iqn:
        raise AttachError(f"storage instance {si.path} has no iSCSI access (ips/iqn)")
    props: dict[str, Any] = {
        "target_portal": f"{si.ips[0]}:{ISCSI_PORT}",
        "target_iqn": si.iqn,
        "target_lun": 0,
        "target_discovered": False,
        "discard": False,
    }
    if chap is not None:
        props.update(auth_method="CHAP", auth_username=chap[0], auth_password=chap[1])
    return props


class Attachment:
    """One user's hold on an attached device; ``close()`` releases it (idempotent).

    Keeps the attach state it was given (checked then), so the last user disconnects what
    was attached, whatever the record file says by then.
    """

    def __init__(self, attacher: Attacher, key: str, token: str, state: dict[str, Any]) -> None:
        self._attacher = attacher
        self._key = key
        self._token = token
        self._state = state
        self.path: str = state["device_info"]["path"]
        self._closed = False

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._attacher._release(self._key, self._token, self._state)

    def detach(self) -> None:
        """Like ``close()``, but a last user detaches at once: the caller takes the volume
        offline next (an upload's growth)."""
        if not self._closed:
            self._closed = True
            self._attacher._release(self._key, self._token, self._state, linger=False)

    def __enter__(self) -> Attachment:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Attacher:
    """Attach app instances to this host, shared between threads and processes.

    :param client: the EDF client (thread-safe, shared with the Store).
    :param settings: attach configuration.
    :param connector_factory: builds os-brick connectors; tests inject a fake.
    :param executor: runs privileged commands (the temporary ``chown``); tests inject a fake.
    :param geteuid: the user glance-api runs as; tests play a non-root glance-api.
    :param by_path_dir: where udev links iSCSI LUNs; tests use their own directory.
    :param clock: seconds, the same in every process of this boot (``time.monotonic``).
    :param timer: schedules the end of a linger; tests inject one they fire by hand.
    """

    def __init__(
        self,
        client: EdfClient,
        settings: AttachSettings,
        *,
        connector_factory: ConnectorFactory | None = None,
        executor: Executor | None = None,
        geteuid: Callable[[], int] = os.geteuid,
        by_path_dir: str = BY_PATH_DIR,
        clock: Callable[[], float] = time.monotonic,
        timer: TimerFactory = thread_timer,
    ) -> None:
        self._client = client
        self._settings = settings
        self._factory = connector_factory or os_brick_connector_factory
        self._execute = executor or processutils_executor
        self._geteuid = geteuid
        self._by_path_dir = by_path_dir
        self._connector: Connector | None = None
        self._initiator: models.Initiator | None = None
        self._init_lock = threading.Lock()
        self._conn_lock = threading.Lock()
        self._lingers = _Lingers(clock, timer)
        self._check_lock_path()

    # -- public ------------------------------------------------------------------------------

    def attach(self, ai: models.AppInstance) -> Attachment:
        """Attach ``ai``'s volume (or join this host's existing attachment)."""
        key = self._key(ai.uuid or ai.id)
        token = user_token()
        with self._locked(key):
            state = self._load(key)
            if state.get("device_info") and not self._is_device_of(state, ai):
                LOG.warning(
                    "Ignoring attach record %s: its device is not app instance %s's",
                    self._state_file(key),
                    ai.name,
                )
                state = {}
            if state.get("device_info") and (state.get("users") or self._lingering(state)):
                if state.pop("linger", None):
                    self._lingers.cancel(key)  # if this process runs it; else it finds out
                state["users"] = [*state.get("users", []), token]
                self._save(key, state)
                return Attachment(self, key, token, state)
            stale_uid = state.get("orig_uid")
            state = self._connect(ai)
            state["boot"] = self._lingers.boot
            if state["orig_uid"] is None and stale_uid is not None:
                # A crashed worker left the device chowned: restore the owner it recorded.
                state["orig_uid"] = stale_uid
            state["users"] = [token]
            try:
                self._save(key, state)
            except BaseException:
                self._disconnect(state)
                raise
            return Attachment(self, key, token, state)

    @contextlib.contextmanager
    def attached(self, ai: models.AppInstance) -> Iterator[str]:
        """``with attacher.attached(ai) as path:`` — attach, yield the device path, release."""
        attachment = self.attach(ai)
        try:
            yield attachment.path
        finally:
            attachment.close()

    def forget(self, ai_uuid: str) -> None:
        """Drop this host's record of a deleted app instance, unless someone still uses it."""
        self.unless_attached(ai_uuid, lambda: None)

    def unless_attached(self, ai_uuid: str, action: Callable[[], None]) -> bool:
        """Run ``action`` (deleting the app instance) unless a user on this host has it
        attached, then drop its record; return whether it ran. Holds the attach lock, so no
        one attaches it meanwhile."""
        key = self._key(ai_uuid)
        self._lingers.cancel(key)
        with self._locked(key):
            state = self._load(key)
            if state.get("users"):
                return False
            if state.get("device_info"):
                self._drop(key, state)  # a lingering attachment goes before the volume
            action()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._state_file(key))
            return True

    def close(self) -> None:
        """End every linger this process runs: detach now (``Store.close``, and at exit)."""
        for key, linger_id in self._lingers.take_all():
            self._end_linger(key, linger_id)

    def sweep(self) -> list[str]:
        """Detach what dead processes of this host left attached to this cluster and tenant:
        records without a live user or a live linger. Run when the store starts."""
        pattern = os.path.basename(self._state_file(self._key("*")))
        head, _, tail = pattern.partition("*")
        swept = []
        for name in sorted(os.listdir(self._settings.lock_path)):
            if not fnmatch.fnmatchcase(name, pattern):
                continue
            key = self._key(name[len(head) : len(name) - len(tail)])
            try:
                with self._locked(key):
                    state = self._load(key)
                    if state.get("users") or self._lingers.alive(state.get("linger")):
                        continue
                    self._drop(key, state)
                swept.append(key)
            except Exception:
                LOG.exception("Could not clean up the attach record %s", name)
        if swept:
            LOG.info("Detached %d attachments left by stopped processes", len(swept))
        return swept

    def host_initiator(self) -> models.Initiator:
        """This host's initiator, registered on the cluster (shared; never removed)."""
        with self._init_lock:
            if self._initiator is None:
                iqn = self._initiator_iqn()
                name = "OpenStack-glance-" + hashlib.sha256(iqn.encode()).hexdigest()[:8]
                self._initiator = self._client.ensure_initiator(iqn, name)
            return self._initiator

    # -- attach / detach ---------------------------------------------------------------------

    def _get_connector(self) -> Connector:
        with self._conn_lock:
            if self._connector is None:
                with _host_errors("starting os-brick"):
                    self._connector = self._factory(
                        self._settings.protocol, self._settings.root_helper
                    )
            return self._connector

    def _initiator_iqn(self) -> str:
        connector = self._get_connector()
        with _host_errors("reading this host's initiator name"):
            props = connector.get_connector_properties(self._settings.root_helper)
        iqn = props.get("initiator") or self._settings.initiator_name
        if iqn:
            return str(iqn)
        if self._settings.connector == "local":
            # The simulator accepts any name; a real cluster needs the host's own.
            return f"iqn.2010-10.org.openstack:glance-{socket.gethostname()}"
        raise AttachError(
            "this host has no iSCSI initiator name (/etc/iscsi/initiatorname.iscsi is missing): "
            "install open-iscsi or set datera_initiator_name"
        )

    def _connect(self, ai: models.AppInstance) -> dict[str, Any]:
        client, settings = self._client, self._settings
        initiator = self.host_initiator()
        current = client.get_app_instance(ai.id)
        if current.admin_state != "online":
            client.set_online(ai.id)
        if initiator.path not in client.get_acl(ai.id):
            # Atomic on EDF: another host adding itself at the same moment keeps its entry.
            client.add_acl_initiator(ai.id, initiator.path)
        chap = self._refresh_chap(current) if settings.connector == "iscsi" else None
        si = client.wait_available(ai.id, timeout=settings.wait_timeout)
        if settings.connector == "iscsi":
            props = iscsi_properties(si, chap)
        else:
            if not si.device_path:
                raise AttachError(
                    f"app instance {ai.name} reports no device_path: the local connector "
                    "only works with the Datera EDF simulator"
                )
            props = {"device_path": si.device_path}
        conn = self._get_connector()
        secret = chap[1] if chap else None
        with _host_errors(f"connecting app instance {ai.name}", secret):
            device_info = conn.connect_volume(props)
        state: dict[str, Any] = {
            "props": {k: v for k, v in props.items() if k not in _SECRET_KEYS},
            "device_info": {k: v for k, v in device_info.items() if k not in _SECRET_KEYS},
            "orig_uid": None,
        }
        path = device_info.get("path", "")
        try:
            with _host_errors(f"handing {path} to the glance user"):
                state["orig_uid"] = self._take_ownership(path)
        except BaseException:
            try:
                with _host_errors(f"disconnecting app instance {ai.name}", secret):
                    conn.disconnect_volume(props, device_info, force=True)
            except AttachError:
                LOG.exception("Could not undo the attachment of %s", ai.name)
            raise
        LOG.debug("Attached app instance %s at %s", ai.name, path)
        return state

    def _refresh_chap(self, current: models.AppInstance) -> tuple[str, str] | None:
        """Make the target's CHAP setting match this configuration; the credentials to use.

        Set when missing or derived from another password (the user name shows which), and
        removed when ``datera_use_chap`` was turned off, so existing images stay attachable.
        """
        si = current.storage_instance
        if not self._settings.use_chap:
            if si.auth_type != "none":
                self._client.clear_chap(current.id)
            return None
        chap = chap_credentials(self._settings.chap_key, current.uuid or current.id)
        if si.auth_type != "chap" or si.chap_user != chap[0]:
            self._client.set_chap(current.id, *chap)
        return chap

    def _release(
        self, key: str, token: str, attached: dict[str, Any], *, linger: bool = True
    ) -> None:
        with self._locked(key):
            state = self._load(key)
            users = [u for u in state.get("users", []) if u != token]
            if users:
                state["users"] = users
                self._save(key, state)
                return
            if linger and self._settings.linger > 0 and state.get("device_info"):
                state["users"] = []
                state["linger"] = self._lingers.start(key, self._settings.linger, self._end_linger)
                self._save(key, state)
                return
            self._drop(key, attached)  # what was attached, not what the file says now

    def _drop(self, key: str, state: dict[str, Any]) -> None:
        """Disconnect the record's device (unless an earlier boot took it) and remove it."""
        try:
            if state.get("device_info") and state.get("boot", self._lingers.boot) == (
                self._lingers.boot
            ):
                self._disconnect(state)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._state_file(key))

    def _lingering(self, state: dict[str, Any]) -> bool:
        """Is the record's idle attachment still connected (lingering, this boot)?"""
        linger = state.get("linger")
        return isinstance(linger, dict) and linger.get("boot") == self._lingers.boot

    def _end_linger(self, key: str, linger_id: str) -> None:
        """Timer callback: detach unless a reader joined or someone lingers anew since."""
        self._lingers.forget(key, linger_id)
        try:
            with self._locked(key):
                state = self._load(key)
                if state.get("users") or (state.get("linger") or {}).get("id") != linger_id:
                    return
                self._drop(key, state)
        except Exception:
            LOG.exception("Detaching a lingering attachment failed")

    def _disconnect(self, state: dict[str, Any]) -> None:
        path = state["device_info"]["path"]
        try:
            if state.get("orig_uid") is not None:
                self._chown(state["orig_uid"], path)
        finally:
            conn = self._get_connector()
            with _host_errors(f"disconnecting {path}"):
                conn.disconnect_volume(state["props"], state["device_info"], force=True)
        LOG.debug("Detached %s", path)

    # -- temporary chown (glance-api not running as root) ------------------------------------

    def _take_ownership(self, path: str) -> int | None:
        """Hand ``path`` to glance-api's user; return the owner to restore, or None."""
        uid = self._geteuid()
        if uid == 0:
            return None
        orig_uid = os.stat(path).st_uid
        if orig_uid == uid:
            return None
        self._chown(uid, path)
        return orig_uid

    def _chown(self, uid: int, path: str) -> None:
        with _host_errors(f"chown {uid} {path}"):
            self._execute(
                "chown", str(uid), path, run_as_root=True, root_helper=self._settings.root_helper
            )

    # -- shared state ------------------------------------------------------------------------

    def _key(self, ai_uuid: str) -> str:
        scope = hashlib.sha256(self._settings.scope.encode()).hexdigest()[:12]
        return f"{scope}-{ai_uuid}"

    def _state_file(self, key: str) -> str:
        return os.path.join(self._settings.lock_path, f"datera-glance-attach-{key}.json")

    def _locked(self, key: str) -> contextlib.AbstractContextManager[Any]:
        return lockutils.lock(
            f"attach-{key}",
            lock_file_prefix="datera-glance-",
            external=True,
            lock_path=self._settings.lock_path,
            do_log=False,
        )

    def _check_lock_path(self) -> None:
        """The records' directory: made private if missing, refused if others can write it."""
        path = self._settings.lock_path
        os.makedirs(path, mode=0o700, exist_ok=True)
        info = os.stat(path)
        if info.st_mode & stat.S_IWOTH or info.st_uid not in (0, self._geteuid()):
            raise AttachError(
                f"{path} must be owned by the glance user and not writable by others (mode "
                f"{stat.filemode(info.st_mode)}, owner uid {info.st_uid}): its attach records "
                "feed privileged commands"
            )
        fd, probe = tempfile.mkstemp(dir=path, prefix=".datera-glance-probe-")
        os.close(fd)
        os.unlink(probe)

    def _is_device_of(self, state: dict[str, Any], ai: models.AppInstance) -> bool:
        """Whether a record's device is ``ai``'s, by what the cluster says about ``ai``."""
        try:
            si = ai.storage_instance
        except LookupError:
            return False
        props, path = state["props"], state["device_info"]["path"]
        if self._settings.connector == "local":
            return bool(si.device_path) and path == si.device_path == props.get("device_path")
        portal = props.get("target_portal")
        portals = {f"{ip}:{ISCSI_PORT}" for ip in si.ips}
        if props.get("target_iqn") != si.iqn or portal not in portals:
            return False
        link = os.path.join(self._by_path_dir, f"ip-{portal}-iscsi-{si.iqn}-lun-0")
        return os.path.realpath(link) == os.path.realpath(path)

    def _load(self, key: str) -> dict[str, Any]:
        try:
            with open(self._state_file(key), encoding="utf-8") as f:
                state = _valid_record(json.load(f))
        except FileNotFoundError:
            return {}
        except ValueError as e:
            LOG.warning("Ignoring attach record %s: %s", self._state_file(key), e)
            return {}
        # A worker that died while holding the device must not keep it attached forever.
        state["users"] = [u for u in state["users"] if user_alive(u)]
        return state

    def _save(self, key: str, state: dict[str, Any]) -> None:
        path = self._state_file(key)
        tmp = f"{path}.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(state, f)
        os.replace(tmp, path)


def user_token() -> str:
    """A user's entry in an attach record: this process (its pid and start time, so that a
    later process given the same pid is not taken for it: pid_max wraps within hours on a
    busy host) and a unique id for this one use."""
    pid = os.getpid()
    ticks = start_ticks(pid)
    return f"{pid}:{ticks}:{uuid.uuid4().hex}" if ticks else f"{pid}:{uuid.uuid4().hex}"


def user_alive(token: str) -> bool:
    """Is the process of a record's user still the one that attached? Tokens without a start
    time (older versions, or a host without procfs) can only ask whether the pid runs."""
    parts = token.split(":")  # pid, [start,] unique id
    return _same_process(int(parts[0]), parts[1] if len(parts) == 3 else None)


def _same_process(pid: int, ticks: str | None) -> bool:
    """Does the process that had ``pid`` and started at ``ticks`` still run (``ticks`` None:
    does any process ``pid`` run)?"""
    return running(pid) if ticks is None else start_ticks(pid) == ticks


def _valid_record(record: Any) -> dict[str, Any]:
    """``record`` if it has the shape ``Attacher`` writes; ValueError (saying why) if not."""
    if not isinstance(record, dict):
        raise ValueError("not a JSON object")
    users = record.setdefault("users", [])
    if not isinstance(users, list) or not all(
        isinstance(u, str) and _USER_TOKEN.fullmatch(u) for u in users
    ):
        raise ValueError("bad users")
    uid = record.get("orig_uid")
    if uid is not None and (type(uid) is not int or uid < 0):
        raise ValueError("bad orig_uid")
    if "device_info" in record:
        info, props = record["device_info"], record.get("props")
        if not (isinstance(info, dict) and isinstance(info.get("path"), str)):
            raise ValueError("bad device_info")
        if not isinstance(props, dict):
            raise ValueError("bad props")
    return record


class _Lingers:
    """This process's pending ends of lingers: key -> (linger id, timer)."""

    def __init__(self, clock: Callable[[], float], timer: TimerFactory) -> None:
        self.boot = boot_id()
        self._clock = clock
        self._timer = timer
        self._pending: dict[str, tuple[str, Timer]] = {}
        self._lock = threading.Lock()
        self._at_exit = False

    def start(self, key: str, seconds: float, end: Callable[[str, str], None]) -> dict[str, Any]:
        """Schedule ``end(key, id)`` in ``seconds``; return the record's ``linger`` entry."""
        linger_id = uuid.uuid4().hex
        timer = self._timer(seconds, lambda: end(key, linger_id))
        with self._lock:
            previous = self._pending.pop(key, None)
            self._pending[key] = (linger_id, timer)
            if not self._at_exit:
                # Weak: the exit hook does not keep a dropped store's attacher alive.
                atexit.register(_close_at_exit, weakref.ref(self), weakref.WeakMethod(end))
                self._at_exit = True
        if previous is not None:
            previous[1].cancel()
        pid = os.getpid()
        return {"id": linger_id, "pid": pid, "start": start_ticks(pid), "boot": self.boot,
                "until": self._clock() + seconds}  # fmt: skip

    def forget(self, key: str, linger_id: str) -> None:
        with self._lock:
            if self._pending.get(key, ("",))[0] == linger_id:
                del self._pending[key]

    def cancel(self, key: str) -> None:
        with self._lock:
            pending = self._pending.pop(key, None)
        if pending is not None:
            pending[1].cancel()

    def take_all(self) -> list[tuple[str, str]]:
        with self._lock:
            pending, self._pending = self._pending, {}
        for _linger_id, timer in pending.values():
            timer.cancel()
        return [(key, linger_id) for key, (linger_id, _timer) in pending.items()]

    def alive(self, linger: dict[str, Any] | None) -> bool:
        """A linger of this boot whose process still runs and whose time is not up."""
        if not linger:
            return False
        start = linger.get("start")
        return (
            linger.get("boot") == self.boot
            and _same_process(int(linger.get("pid", 0)), start if isinstance(start, str) else None)
            and float(linger.get("until", 0.0)) > self._clock()
        )


def _close_at_exit(
    lingers_ref: weakref.ref[_Lingers], end_ref: weakref.WeakMethod[Callable[[str, str], None]]
) -> None:
    """glance-api's shutdown: nothing of this process lingers past it."""
    lingers, end = lingers_ref(), end_ref()
    if lingers is not None and end is not None:
        for key, linger_id in lingers.take_all():
            end(key, linger_id)
