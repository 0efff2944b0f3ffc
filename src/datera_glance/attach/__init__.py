"""From an app instance to a local block device path, and back.

The room's parts, each with one concern:

- ``attacher``: ``Attacher`` orchestrates (cluster initiator, ACL and CHAP; connect; lend;
  record; linger; release; reclaim of stale attachments) and ``Attachment`` is one user's hold.
- ``connectors``: one ``ConnectorStrategy`` per kind of connection (``LocalStrategy``,
  ``IscsiStrategy``, ``IscsiMultipathStrategy``), chosen once by ``strategy_for``.
- ``records``: the typed attach record (``AttachRecord``) and its store under ``lock_path``
  (load, save, lock; ``validate_lock_path``).
- ``lingers``: this process's timers that end lingering attachments.
- ``chap``: CHAP credentials and the target's CHAP setting.
- ``devices``: lending a device to glance's user inside privsep, verified.
- ``errors``: ``AttachError``, the one failure type callers see.
"""

from datera_glance.attach.attacher import Attacher, Attachment, AttachSettings
from datera_glance.attach.chap import chap_credentials
from datera_glance.attach.connectors import (
    BY_PATH_DIR,
    ISCSI_PORT,
    Connector,
    ConnectorFactory,
    ConnectorStrategy,
    IscsiMultipathStrategy,
    IscsiStrategy,
    LocalStrategy,
    Prerequisite,
    iscsi_properties,
    os_brick_connector_factory,
    strategy_for,
)
from datera_glance.attach.devices import DeviceOwner, PrivsepDeviceOwner
from datera_glance.attach.errors import AttachError
from datera_glance.attach.lingers import Lingers, Timer, TimerFactory, thread_timer
from datera_glance.attach.records import (
    AttachedDevice,
    AttachRecord,
    LockPathError,
    RecordStore,
    user_running,
    user_token,
    validate_lock_path,
)

__all__ = [
    "BY_PATH_DIR",
    "ISCSI_PORT",
    "AttachError",
    "AttachRecord",
    "AttachSettings",
    "AttachedDevice",
    "Attacher",
    "Attachment",
    "Connector",
    "ConnectorFactory",
    "ConnectorStrategy",
    "DeviceOwner",
    "IscsiMultipathStrategy",
    "IscsiStrategy",
    "Lingers",
    "LocalStrategy",
    "LockPathError",
    "Prerequisite",
    "PrivsepDeviceOwner",
    "RecordStore",
    "Timer",
    "TimerFactory",
    "chap_credentials",
    "iscsi_properties",
    "os_brick_connector_factory",
    "strategy_for",
    "thread_timer",
    "user_running",
    "user_token",
    "validate_lock_path",
]
