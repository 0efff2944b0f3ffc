"""The attacher: orchestrates the cluster (initiator, ACL, CHAP), the connector strategy, the
device owner and the records, to turn an app instance into a local block device and back.

One host attaches an image's volume once, however many threads and worker processes read
it: users are counted in its record (``records``), changed only under the record's lock, and
the last user disconnects. Several glance-api hosts share a cluster, so a user never takes an
app instance offline and never removes an ACL entry: a complete image stays online with the
initiators of every host that read it.

After its last user, an attachment lingers for ``AttachSettings.linger`` seconds (the record
stays, without users), so back-to-back reads of one image attach once. The process that
released it last ends the linger with a timer; a reader that comes meanwhile, from any process,
joins it. ``close()`` (also run at interpreter exit) ends this process's lingers; the records a
crashed process left (no live user, no live linger, or an earlier boot) are detached by
``reclaim()`` when the store starts again. A record's device is verified before it is used: by
the cluster's view when joining, by the host's own when reclaiming.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import stat
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from datera_glance.attach.chap import refresh_chap
from datera_glance.attach.connectors import (
    BY_PATH_DIR,
    ConnectorFactory,
    ConnectorStrategy,
    strategy_for,
)
from datera_glance.attach.devices import DeviceOwner, PrivsepDeviceOwner
from datera_glance.attach.errors import AttachError, host_errors
from datera_glance.attach.lingers import Lingers, TimerFactory, thread_timer
from datera_glance.attach.records import AttachedDevice, AttachRecord, RecordStore, user_token

if TYPE_CHECKING:
    from datera_glance.edf import EdfClient, models

LOG = logging.getLogger("datera_glance.attach")

# Keys of os-brick connection properties that must never reach a file or a log.
_SECRET_KEYS = ("auth_password", "auth_username", "discovery_auth_password")


@dataclass(frozen=True)
class AttachSettings:
    """What attaching needs from the store configuration."""

    connector: str  # "iscsi" | "local"
    lock_path: str
    scope: str  # identifies the cluster + tenant; keeps records of two backends apart
    initiator_name: str | None = None
    use_chap: bool = False
    chap_key: bytes = field(default=b"", repr=False)  # derives CHAP secrets; never logged
    use_multipath: bool = False
    rootwrap_config: str = "/etc/glance/rootwrap.conf"
    wait_timeout: float = 120.0
    linger: float = 0.0  # seconds an attachment stays after its last user; 0: detach at once

    @property
    def root_helper(self) -> str:
        return f"sudo glance-rootwrap {self.rootwrap_config}"

    def strategy(
        self, factory: ConnectorFactory | None = None, *, by_path_dir: str = BY_PATH_DIR
    ) -> ConnectorStrategy:
        """The connector strategy these settings choose."""
        return strategy_for(
            self.connector, self.use_multipath, self.root_helper, factory, by_path_dir=by_path_dir
        )


class Attachment:
    """One user's hold on an attached device; ``close()`` releases it (idempotent).

    Keeps the record it was given (checked then), so the last user disconnects what was
    attached, whatever the record file says by then.
    """

    def __init__(self, attacher: Attacher, key: str, token: str, record: AttachRecord) -> None:
        assert record.device is not None
        self._attacher = attacher
        self._key = key
        self._token = token
        self._record = record
        self.path: str = record.device.path
        self._closed = False

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._attacher._release(self._key, self._token, self._record)

    def detach(self) -> None:
        """Like ``close()``, but a last user detaches at once: the caller takes the volume
        offline next (an upload's growth)."""
        if not self._closed:
            self._closed = True
            self._attacher._release(self._key, self._token, self._record, linger=False)

    def __enter__(self) -> Attachment:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Attacher:
    """Attach app instances to this host, shared between threads and processes.

    :param client: the EDF client (thread-safe, shared with the Store).
    :param settings: attach configuration.
    :param connector_factory: builds os-brick connectors; tests inject a fake.
    :param device_owner: lends a device to glance's user and back; tests inject a fake.
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
        device_owner: DeviceOwner | None = None,
        geteuid: Callable[[], int] = os.geteuid,
        by_path_dir: str = BY_PATH_DIR,
        clock: Callable[[], float] = time.monotonic,
        timer: TimerFactory = thread_timer,
    ) -> None:
        self._client = client
        self._settings = settings
        self.strategy = settings.strategy(connector_factory, by_path_dir=by_path_dir)
        self._owner = device_owner or PrivsepDeviceOwner(settings.root_helper, geteuid)
        self._geteuid = geteuid
        self._initiator: models.Initiator | None = None
        self._init_lock = threading.Lock()
        self._lingers = Lingers(clock, timer)
        self._records = RecordStore(
            settings.lock_path, settings.scope, boot=self._lingers.boot, euid=geteuid()
        )

    # -- public ------------------------------------------------------------------------------

    def attach(self, ai: models.AppInstance) -> Attachment:
        """Attach ``ai``'s volume (or join this host's existing attachment)."""
        key = self._records.key(ai.uuid or ai.id)
        token = user_token()
        with self._records.locked(key):
            record = self._records.load(key)
            if record.device is not None and not self._is_device_of(record.device, ai):
                LOG.warning(
                    "Ignoring attach record %s: its device is not app instance %s's",
                    self._records.path(key),
                    ai.name,
                )
                record = AttachRecord()
            if record.device is not None and (
                record.users or self._lingers.connected(record.linger)
            ):
                if record.linger is not None:
                    self._lingers.cancel(key)  # if this process runs it; else it finds out
                record = record.replace(users=(*record.users, token), linger=None)
                self._records.save(key, record)
                return Attachment(self, key, token, record)
            # A crashed worker may have left the device lent: give it back at the end.
            stale = record.device.lent if record.device is not None else False
            record = AttachRecord(self._connect(ai, stale), self._lingers.boot, (token,))
            try:
                self._records.save(key, record)
            except BaseException:
                self._disconnect(record)
                raise
            return Attachment(self, key, token, record)

    @contextlib.contextmanager
    def attached(self, ai: models.AppInstance) -> Iterator[str]:
        """``with attacher.attached(ai) as path:`` — attach, yield the device path, release."""
        attachment = self.attach(ai)
        try:
            yield attachment.path
        finally:
            attachment.close()

    def unless_attached(self, ai_uuid: str, action: Callable[[], None]) -> bool:
        """Run ``action`` (deleting the app instance) unless a user on this host has it
        attached, then drop its record; return whether it ran. Holds the attach lock, so no
        one attaches it meanwhile."""
        key = self._records.key(ai_uuid)
        self._lingers.cancel(key)
        with self._records.locked(key):
            record = self._records.load(key)
            if record.users:
                return False
            self._drop(key, record)  # a lingering attachment goes before the volume
            action()
            self._records.remove(key)
            return True

    def close(self) -> None:
        """End every linger this process runs: detach now (``Store.close``, and at exit)."""
        for key, linger_id in self._lingers.take_all():
            self._end_linger(key, linger_id)

    def reclaim(self) -> list[str]:
        """Reclaim stale attachments: detach what dead processes of this host left attached to
        this cluster and tenant (records without a live user or a live linger). Run when the
        store starts."""
        reclaimed = []
        for key in self._records.stored_keys():
            try:
                with self._records.locked(key):
                    record = self._records.load(key)
                    if record.users or self._lingers.live(record.linger):
                        continue
                    self._drop(key, record)
                reclaimed.append(key)
            except Exception:
                LOG.exception("Could not clean up the attach record %s", key)
        if reclaimed:
            LOG.info("Detached %d attachments left by stopped processes", len(reclaimed))
        with contextlib.suppress(OSError):
            self._records.remove_old_lock_files()
        return reclaimed

    def host_initiator(self) -> models.Initiator:
        """This host's initiator, registered on the cluster (shared; never removed)."""
        with self._init_lock:
            if self._initiator is None:
                iqn = self.strategy.initiator_iqn(self._settings.initiator_name)
                name = "OpenStack-glance-" + hashlib.sha256(iqn.encode()).hexdigest()[:8]
                self._initiator = self._client.ensure_initiator(iqn, name)
            return self._initiator

    # -- attach / detach ---------------------------------------------------------------------

    def _connect(self, ai: models.AppInstance, lent: bool = False) -> AttachedDevice:
        client, settings, strategy = self._client, self._settings, self.strategy
        initiator = self.host_initiator()
        current = client.get_app_instance(ai.id)
        if current.admin_state != "online":
            client.set_online(ai.id)
        if initiator.path not in client.get_acl(ai.id):
            # Atomic on EDF: another host adding itself at the same moment keeps its entry.
            client.add_acl_initiator(ai.id, initiator.path)
        chap = None
        if strategy.uses_chap:
            chap = refresh_chap(client, current, settings.use_chap, settings.chap_key)
        si = client.wait_available(ai.id, timeout=settings.wait_timeout)
        props = strategy.properties(si, chap)
        secret = chap[1] if chap else None
        conn = strategy.connector()
        with host_errors(f"connecting app instance {ai.name}", secret):
            device_info = conn.connect_volume(props)
        try:
            device = self._lend(_attached_device(props, device_info), lent)
        except BaseException:
            try:
                with host_errors(f"disconnecting app instance {ai.name}", secret):
                    conn.disconnect_volume(props, device_info, force=True)
            except AttachError:
                LOG.exception("Could not undo the attachment of %s", ai.name)
            raise
        LOG.debug("Attached app instance %s at %s", ai.name, device.path)
        return device

    def _lend(self, device: AttachedDevice, lent: bool) -> AttachedDevice:
        """Hand the device to glance's user when glance-api does not run as root (``lent``:
        a crashed worker's record says it was, and the device is the same)."""
        if self._geteuid() == 0:
            return device
        lent = self._owner.lend(device.path, device.rdev) or lent
        return AttachedDevice(device.props, device.info, device.rdev, lent)

    def _release(
        self, key: str, token: str, attached: AttachRecord, *, linger: bool = True
    ) -> None:
        with self._records.locked(key):
            record = self._records.load(key)
            users = tuple(u for u in record.users if u != token)
            if users:
                self._records.save(key, record.replace(users=users))
                return
            if linger and self._settings.linger > 0 and record.device is not None:
                started = self._lingers.start(key, self._settings.linger, self._end_linger)
                self._records.save(key, record.replace(users=(), linger=started))
                return
            # What was attached, not what the file says now.
            self._drop(key, attached, verify=False)

    def _drop(self, key: str, record: AttachRecord, *, verify: bool = True) -> None:
        """Disconnect the record's device (unless an earlier boot took it, or, ``verify``: a
        record read from disk, the host does not show it as attached by its properties) and
        remove the record."""
        try:
            device = record.device
            if device is not None and record.boot == self._lingers.boot:
                if not verify or self.strategy.still_attached(device):
                    self._disconnect(record)
                else:
                    LOG.warning(
                        "Attach record %s names %s, which this host does not show as "
                        "attached by it: not disconnected",
                        self._records.path(key),
                        device.path,
                    )
        finally:
            self._records.remove(key)

    def _end_linger(self, key: str, linger_id: str) -> None:
        """Timer callback: detach unless a reader joined or someone lingers anew since."""
        self._lingers.forget(key, linger_id)
        try:
            with self._records.locked(key):
                record = self._records.load(key)
                if record.users or record.linger is None or record.linger.id != linger_id:
                    return
                self._drop(key, record)
        except Exception:
            LOG.exception("Detaching a lingering attachment failed")

    def _disconnect(self, record: AttachRecord) -> None:
        device = record.device
        assert device is not None
        try:
            if device.lent:
                self._owner.give_back(device.path, device.rdev)
        finally:
            conn = self.strategy.connector()
            with host_errors(f"disconnecting {device.path}"):
                conn.disconnect_volume(dict(device.props), dict(device.info), force=True)
        LOG.debug("Detached %s", device.path)

    def _is_device_of(self, device: AttachedDevice, ai: models.AppInstance) -> bool:
        """Whether a record's device is ``ai``'s, by what the cluster says about ``ai``."""
        try:
            si = ai.storage_instance
        except LookupError:
            return False
        return self.strategy.is_device_of(device, si)


def _attached_device(props: dict[str, Any], info: dict[str, Any]) -> AttachedDevice:
    """What os-brick attached, without secrets, with the device number its path has now."""
    path = info.get("path")
    if not isinstance(path, str) or not path:
        raise AttachError(f"os-brick returned no device path ({info.get('type')})")
    with host_errors(f"reading the attached device {path}"):
        st = os.stat(path)
    return AttachedDevice(
        props={k: v for k, v in props.items() if k not in _SECRET_KEYS},
        info={k: v for k, v in info.items() if k not in _SECRET_KEYS},
        rdev=st.st_rdev if stat.S_ISBLK(st.st_mode) else None,
    )
