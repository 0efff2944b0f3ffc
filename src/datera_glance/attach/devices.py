"""Lending an attached block device to glance's user, and giving it back.

glance-api usually runs as its own user, and a new SCSI or dm device belongs to root; the
copier needs to open it. The owner change runs as root inside an oslo.privsep daemon
(``datera_glance.privileged``), never as a command whose path argument a filter would have to
judge. The privileged half (``lend``, ``give_back``) trusts no path: it opens it with
``O_PATH|O_NOFOLLOW`` and acts on that descriptor only if it is a block device whose device
number is the one os-brick's device had when attached (``st_rdev``). ``lend`` takes only a
device root owns; ``give_back`` returns it to root only while glance's user still owns it.
No uid comes from a record: a forged or stale record can at most give root back a device
that glance's user holds and whose number it names.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shlex
import stat
import threading
from collections.abc import Callable, Iterator
from typing import Protocol

from datera_glance.attach.errors import AttachError, host_errors

DEVICE_DIR = "/dev/"


class DeviceOwner(Protocol):
    """Hands a device to glance's user and back (tests inject a recording fake)."""

    def lend(self, path: str, rdev: int | None) -> bool:
        """Make ``path`` readable and writable by glance's user; whether it was lent
        (False: it already was)."""
        ...

    def give_back(self, path: str, rdev: int | None) -> None:
        """Undo ``lend``."""
        ...


# -- the privileged half (runs as root in the privsep daemon; tests call it as root) --------


@contextlib.contextmanager
def _opened(path: str, rdev: int) -> Iterator[tuple[int, os.stat_result]]:
    """``path`` opened ``O_PATH|O_NOFOLLOW`` if it is the block device numbered ``rdev``."""
    if not path.startswith(DEVICE_DIR) or os.path.normpath(path) != path:
        raise PermissionError(errno.EPERM, f"not a normalized path under {DEVICE_DIR}", path)
    fd = os.open(path, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        info = os.fstat(fd)
        if not stat.S_ISBLK(info.st_mode):
            raise PermissionError(errno.ENOTBLK, "not a block device", path)
        if info.st_rdev != rdev:
            raise PermissionError(
                errno.EPERM, f"device {info.st_rdev:#x} is not the attached {rdev:#x}", path
            )
        yield fd, info
    finally:
        os.close(fd)


def _chown_fd(fd: int, uid: int) -> None:
    # An O_PATH descriptor refuses fchown; its /proc link is the opened inode itself.
    os.chown(f"/proc/self/fd/{fd}", uid, -1)


def lend(path: str, rdev: int, uid: int) -> bool:
    """Give the root-owned block device ``rdev`` at ``path`` to ``uid``; False if ``uid``
    owns it already. PermissionError for anything else."""
    with _opened(path, rdev) as (fd, info):
        if info.st_uid == uid:
            return False
        if info.st_uid != 0:
            raise PermissionError(errno.EPERM, f"owned by uid {info.st_uid}, not root", path)
        _chown_fd(fd, uid)
        return True


def give_back(path: str, rdev: int, uid: int) -> bool:
    """Return the block device ``rdev`` at ``path`` to root if ``uid`` owns it; whether it
    did. PermissionError if ``path`` is not that device."""
    with _opened(path, rdev) as (fd, info):
        if info.st_uid != uid:
            return False
        _chown_fd(fd, 0)
        return True


# -- the unprivileged half ---------------------------------------------------------------

_privsep_lock = threading.Lock()
_privsep_ready = False


def init_privsep(root_helper: str, before: Callable[[], None] | None = None) -> None:
    """Tell oslo.privsep (once per process) to start its daemons through ``root_helper``
    (``sudo glance-rootwrap ...``, whose filters allow ``privsep-helper`` for os-brick's and
    this package's contexts), as glance's cinder store does. ``before`` runs first, once."""
    global _privsep_ready
    from oslo_privsep import priv_context

    with _privsep_lock:
        if not _privsep_ready:
            if before is not None:
                before()
            priv_context.init(root_helper=shlex.split(root_helper))
            _privsep_ready = True


class PrivsepDeviceOwner:
    """``DeviceOwner`` through this package's privsep context.

    :param root_helper: starts the privsep daemon.
    :param geteuid: the glance user.
    """

    def __init__(self, root_helper: str, geteuid: Callable[[], int] = os.geteuid) -> None:
        self._root_helper = root_helper
        self._geteuid = geteuid

    def lend(self, path: str, rdev: int | None) -> bool:
        uid = self._geteuid()
        real = os.path.realpath(path)
        if uid == 0 or (uid == os.geteuid() and os.access(real, os.R_OK | os.W_OK)):
            return False  # root, or the glance user may already (e.g. in group disk)
        if rdev is None:
            raise AttachError(f"{path} is not a block device: not handed to uid {uid}")
        from datera_glance import privileged

        init_privsep(self._root_helper)
        with host_errors(f"handing {real} to uid {uid}"):
            return bool(privileged.lend_device(real, rdev, uid))

    def give_back(self, path: str, rdev: int | None) -> None:
        if rdev is None:
            return
        from datera_glance import privileged

        init_privsep(self._root_helper)
        real = os.path.realpath(path)
        with host_errors(f"giving {real} back to root"):
            privileged.give_back_device(real, rdev, self._geteuid())
