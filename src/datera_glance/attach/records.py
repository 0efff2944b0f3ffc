"""The attach records under ``lock_path``: one small JSON file per image and this host, its
lock, and the rule for the directory that holds them (``validate_lock_path``).

A record counts the users of an image's attachment across the host's processes and names what
to disconnect. A record is data from a file, never trusted: one that does not parse (not JSON,
too deep, too big, a directory, a symlink, wrong types) is ignored and logged, never fatal, and
what it names is verified again before any privileged call (the connector strategy and
``devices`` do that). Users whose process is gone (or who were written by an earlier boot or
an older version) do not count. Locks are striped: at most ``LOCK_STRIPES`` lock files per
cluster and tenant, however many images were ever touched.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fnmatch
import hashlib
import json
import logging
import os
import re
import stat
import tempfile
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from oslo_concurrency import lockutils

from datera_glance.attach.errors import AttachError
from datera_glance.host import running, start_ticks

LOG = logging.getLogger("datera_glance.attach")

LOCK_STRIPES = 64  # lock files per cluster and tenant (images share them by hash)
MAX_RECORD_BYTES = 64 * 1024  # a record is well under 2 KiB; anything bigger is not ours
_PREFIX = "datera-glance-attach-"
# "<pid>:<start ticks>:<uuid4 hex>", see user_token
_USER_TOKEN = re.compile(r"([0-9]{1,10}):([0-9]{1,20}):[0-9a-f]{32}")
# "<pid>:<uuid4 hex>" from older versions: parsed, never alive (the upgrade restarted them)
_OLD_TOKEN = re.compile(r"[0-9]{1,10}:[0-9a-f]{32}")
# What may go into a record's file name as is; anything else is hashed.
_SAFE_NAME = re.compile(r"[0-9A-Za-z][0-9A-Za-z_.-]{0,127}")


class LockPathError(AttachError):
    """``lock_path`` cannot hold attach records safely; the message says why and the fix."""


def validate_lock_path(path: str, euid: int | None = None) -> None:
    """The rule for ``[oslo_concurrency] lock_path`` (the Store's start and ``check`` both ask
    it): created 0700 if missing; else a directory owned by root or ``euid`` (default: this
    process's), writable by neither group nor others, inside directories others cannot
    replace it in (not writable by others, unless sticky), and writable here. Its records
    drive privileged calls: anyone else who could write one could steer them.
    ``LockPathError`` naming the problem and the fix."""
    euid = os.geteuid() if euid is None else euid
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        info = os.stat(path)
    except OSError as e:
        raise LockPathError(f"{path}: {e.strerror}; create it (mode 0700)") from e
    if not stat.S_ISDIR(info.st_mode):
        raise LockPathError(f"{path} is not a directory; point lock_path at one")
    mode = stat.filemode(info.st_mode)
    if info.st_uid not in (0, euid):
        raise LockPathError(
            f"{path} is owned by uid {info.st_uid}, not by the glance user (uid {euid}): its "
            f"attach records feed privileged calls; chown it to the glance user"
        )
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise LockPathError(
            f"{path} is writable by its group or others ({mode}): its attach records feed "
            f"privileged calls; chmod 700 {path}"
        )
    _check_parents(path)
    try:
        fd, probe = tempfile.mkstemp(dir=path, prefix=".datera-glance-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise LockPathError(f"{path}: {e.strerror}; make it writable by the glance user") from e


def _check_parents(path: str) -> None:
    """No directory above ``path`` lets others rename it away and put their own in place."""
    parent = os.path.dirname(os.path.realpath(path))
    while True:
        info = os.stat(parent)
        if info.st_mode & stat.S_IWOTH and not info.st_mode & stat.S_ISVTX:
            raise LockPathError(
                f"{parent}, above {path}, is writable by others without the sticky bit: "
                "anyone could replace lock_path; move lock_path or chmod o-w it"
            )
        if parent == "/":
            return
        parent = os.path.dirname(parent)


def user_token() -> str:
    """A user's entry in an attach record: this process (its pid and start time, so that a
    later process given the same pid is not taken for it: pid_max wraps within hours on a
    busy host) and a unique id for this one use."""
    pid = os.getpid()
    return f"{pid}:{start_ticks(pid) or 0}:{uuid.uuid4().hex}"


def user_running(token: str) -> bool:
    """Is the process of a record's user still the one that attached? Tokens of older
    versions (no start time) are not: every process was restarted with the upgrade. pid 1
    (init) is never a reader, unless it is this very process (a container's only one)."""
    match = _USER_TOKEN.fullmatch(token)
    if match is None:
        return False
    pid = int(match[1])
    if pid <= 1 and pid != os.getpid():
        return False
    return process_running(pid, match[2])


def process_running(pid: int, ticks: str | None) -> bool:
    """Does the process that had ``pid`` and started at ``ticks`` still run (``ticks`` None:
    does any process ``pid`` run)?"""
    if pid <= 0:
        return False
    return running(pid) if ticks is None else start_ticks(pid) == ticks


def _field(data: Mapping[str, Any], name: str, kinds: type | tuple[type, ...]) -> Any:
    """``data[name]`` if it is of ``kinds`` (never a bool); ValueError naming it if not."""
    value = data.get(name)
    if isinstance(value, bool) or not isinstance(value, kinds):
        raise ValueError(f"bad {name}")
    return value


@dataclass(frozen=True)
class Linger:
    """An idle attachment kept for ``until`` (``time.monotonic``, shared by the host's
    processes) by process ``pid`` (started at ``start`` ticks) of ``boot``."""

    id: str
    pid: int
    start: str | None
    boot: str
    until: float

    @classmethod
    def parse(cls, data: Any) -> Linger:
        if not isinstance(data, dict):
            raise ValueError("bad linger")
        start = data.get("start")
        if start is not None and not (isinstance(start, str) and start.isdigit()):
            raise ValueError("bad linger.start")
        pid = _field(data, "pid", int)
        if pid <= 0:
            raise ValueError("bad linger.pid")
        return cls(
            id=_field(data, "id", str),
            pid=pid,
            start=start,
            boot=_field(data, "boot", str),
            until=float(_field(data, "until", (int, float))),
        )


@dataclass(frozen=True)
class AttachedDevice:
    """What os-brick attached: its connection properties and device info (secrets never
    kept), and the device number the path had right after (None: not a block device)."""

    props: Mapping[str, Any]
    info: Mapping[str, Any]
    rdev: int | None = None
    lent: bool = False  # handed to glance's user (devices.DeviceOwner.lend): give it back

    @property
    def path(self) -> str:
        return str(self.info["path"])

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> AttachedDevice:
        info, props = data.get("device_info"), data.get("props")
        if not (isinstance(info, dict) and isinstance(info.get("path"), str)):
            raise ValueError("bad device_info")
        if not isinstance(props, dict):
            raise ValueError("bad props")
        rdev = data.get("rdev")
        if rdev is not None and (type(rdev) is not int or rdev < 0):
            raise ValueError("bad rdev")
        lent = data.get("lent", False)
        if not isinstance(lent, bool):
            raise ValueError("bad lent")
        return cls(props=props, info=info, rdev=rdev, lent=lent)


@dataclass(frozen=True)
class AttachRecord:
    """This host's attachment of one image: what is attached (None: nothing), in which
    boot, its users (``user_token``s) and, while idle, its linger."""

    device: AttachedDevice | None = None
    boot: str = ""
    users: tuple[str, ...] = ()
    linger: Linger | None = field(default=None)

    def replace(self, **changes: Any) -> AttachRecord:
        return dataclasses.replace(self, **changes)

    @classmethod
    def parse(cls, data: Any) -> AttachRecord:
        """The record in ``data`` (decoded JSON); ValueError saying why it is not one."""
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        users = data.get("users", [])
        if not isinstance(users, list) or not all(
            isinstance(u, str) and (_USER_TOKEN.fullmatch(u) or _OLD_TOKEN.fullmatch(u))
            for u in users
        ):
            raise ValueError("bad users")
        boot = data.get("boot", "")
        if not isinstance(boot, str):
            raise ValueError("bad boot")
        linger = data.get("linger")
        return cls(
            device=AttachedDevice.parse(data) if "device_info" in data else None,
            boot=boot,
            users=tuple(users),
            linger=None if linger is None else Linger.parse(linger),
        )

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"boot": self.boot, "users": list(self.users)}
        if self.device is not None:
            data.update(
                props=dict(self.device.props),
                device_info=dict(self.device.info),
                rdev=self.device.rdev,
                lent=self.device.lent,
            )
        if self.linger is not None:
            data["linger"] = dataclasses.asdict(self.linger)
        return data


class RecordStore:
    """The records of one cluster and tenant (``scope``) under ``lock_path``.

    :param boot: this boot's id: users of a record of another boot are gone.
    :param euid: the glance user, for ``validate_lock_path``.
    """

    def __init__(self, lock_path: str, scope: str, *, boot: str, euid: int) -> None:
        validate_lock_path(lock_path, euid)
        self.lock_path = lock_path
        self.boot = boot
        self._scope = hashlib.sha256(scope.encode()).hexdigest()[:12]

    def key(self, ai_uuid: str) -> str:
        """The key of an app instance's record (its uuid, hashed unless a plain name)."""
        name = (
            ai_uuid
            if _SAFE_NAME.fullmatch(ai_uuid)
            else hashlib.sha256(ai_uuid.encode()).hexdigest()
        )
        return f"{self._scope}-{name}"

    def path(self, key: str) -> str:
        return os.path.join(self.lock_path, f"{_PREFIX}{key}.json")

    def locked(self, key: str) -> contextlib.AbstractContextManager[Any]:
        """The inter-process lock of ``key``'s record (threads of this process too); one of
        ``LOCK_STRIPES`` lock files, so their number stays bounded."""
        stripe = int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) % LOCK_STRIPES
        return lockutils.lock(
            f"attach-{self._scope}-lock-{stripe:02d}",
            lock_file_prefix="datera-glance-",
            external=True,
            lock_path=self.lock_path,
            do_log=False,
        )

    def stored_keys(self) -> list[str]:
        """The keys of this scope's records on disk."""
        pattern = f"{_PREFIX}{self._scope}-*.json"
        return [
            name[len(_PREFIX) : -len(".json")]
            for name in sorted(os.listdir(self.lock_path))
            if fnmatch.fnmatchcase(name, pattern)
        ]

    def load(self, key: str) -> AttachRecord:
        """The record (empty if none, or if it cannot be one: logged), without its dead
        users. Call under ``locked(key)``."""
        path = self.path(key)
        try:
            record = AttachRecord.parse(json.loads(_read_small_file(path)))
        except FileNotFoundError:
            return AttachRecord()
        except (OSError, ValueError, RecursionError) as e:
            LOG.warning("Ignoring attach record %s: %s", path, e or type(e).__name__)
            return AttachRecord()
        if record.boot != self.boot:
            return record.replace(users=())
        return record.replace(users=tuple(u for u in record.users if user_running(u)))

    def save(self, key: str, record: AttachRecord) -> None:
        """Replace the record atomically (a new 0600 file renamed over it)."""
        path = self.path(key)
        tmp = f"{path}.{uuid.uuid4().hex}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(record.to_json(), f)
            self._clear_way(path)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def remove(self, key: str) -> None:
        """Delete the record (whatever sits at its name: a directory is moved aside)."""
        path = self.path(key)
        self._clear_way(path)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)

    def remove_old_lock_files(self) -> int:
        """Delete the per-image lock files of older versions (``<prefix><scope>-<uuid>``, no
        longer locked by anyone once every process of the host was restarted)."""
        removed = 0
        for name in os.listdir(self.lock_path):
            if (
                fnmatch.fnmatchcase(name, f"{_PREFIX}{self._scope}-*")
                and not name.endswith((".json", ".tmp"))
                and not fnmatch.fnmatchcase(name, f"{_PREFIX}{self._scope}-lock-[0-9][0-9]")
            ):
                with contextlib.suppress(FileNotFoundError, IsADirectoryError):
                    os.unlink(os.path.join(self.lock_path, name))
                    removed += 1
        return removed

    @staticmethod
    def _clear_way(path: str) -> None:
        """A directory where a record belongs would make every write of it fail: removed if
        empty, else renamed aside (and logged)."""
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            return
        if not stat.S_ISDIR(info.st_mode):
            return
        try:
            os.rmdir(path)
        except OSError as e:
            if e.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
            aside = f"{path}.unusable-{uuid.uuid4().hex[:8]}"
            os.rename(path, aside)
        LOG.warning("Moved a directory out of the way of the attach record %s", path)


def _read_small_file(path: str) -> str:
    """A regular file's text, at most ``MAX_RECORD_BYTES``; never follows a symlink or
    blocks on a FIFO. OSError or ValueError otherwise."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ValueError("not a regular file")
        if info.st_size > MAX_RECORD_BYTES:
            raise ValueError(f"{info.st_size} bytes, more than a record can be")
        data = os.read(fd, MAX_RECORD_BYTES + 1)
    finally:
        os.close(fd)
    if len(data) > MAX_RECORD_BYTES:
        raise ValueError("more bytes than a record can be")
    return data.decode("utf-8")
