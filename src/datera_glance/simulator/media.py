"""Where a volume's bytes live (its *media*): a sparse file, exposed as itself or through a loop
device."""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import stat
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from oslo_utils import units

LOG = logging.getLogger(__name__)

#: Runs a command and returns its stdout; raises ``subprocess.CalledProcessError`` on failure.
Runner = Callable[[Sequence[str]], str]


def run_command(argv: Sequence[str]) -> str:
    proc = subprocess.run(list(argv), check=True, capture_output=True, text=True, timeout=60)
    return proc.stdout


class MediaError(RuntimeError):
    """Attaching or detaching a volume failed."""


class Media(Protocol):
    name: str

    def attach(self, file: Path) -> str:
        """Make the volume file reachable; return its device path."""
        ...

    def detach(self, device: str, file: Path) -> None: ...

    def cleanup(self, file: Path) -> list[str]:
        """Detach anything of ours left on ``file`` (after a crash); return what was detached."""
        ...


#: Volume and snapshot files hold images: the simulator's user's alone.
FILE_MODE = 0o600
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def create_volume_file(file: Path, size_bytes: int) -> None:
    file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with os.fdopen(os.open(file, _NEW_FILE, FILE_MODE), "wb") as f:
        f.truncate(size_bytes)


def make_private(file: Path) -> None:
    """Mode 0600 for a volume or snapshot file an older simulator made 0644 (if it exists)."""
    try:
        fd = os.open(file, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    try:
        if stat.S_IMODE(os.fstat(fd).st_mode) != FILE_MODE:
            os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)


def grow_volume_file(file: Path, size_bytes: int) -> None:
    # Only ever grows: EDF refuses shrinking, and the API layer checks that first.
    if os.stat(file).st_size < size_bytes:
        os.truncate(file, size_bytes)


#: ioctl FICLONE (linux/fs.h): share every extent of another file (btrfs, XFS, ...).
_FICLONE = 0x40049409


def copy_volume_file(source: Path, target: Path) -> str:
    """Make ``target`` a new file with the bytes ``source`` has now: a clone or a snapshot.

    A reflink where the filesystem has them (instant, shares the extents); else the data
    extents alone with ``copy_file_range`` (the kernel copies, holes stay holes). Returns
    ``"reflink"`` or ``"copy"``. On failure ``target`` does not exist.
    """
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with open(source, "rb") as src, os.fdopen(os.open(target, _NEW_FILE, FILE_MODE), "wb") as dst:
        try:
            try:
                fcntl.ioctl(dst.fileno(), _FICLONE, src.fileno())
                return "reflink"
            except OSError as exc:
                if exc.errno not in (errno.EOPNOTSUPP, errno.ENOTTY, errno.EXDEV, errno.EINVAL):
                    raise
            size = os.fstat(src.fileno()).st_size
            os.ftruncate(dst.fileno(), size)
            for start, end in _data_extents(src.fileno(), size):
                _copy_range(src.fileno(), dst.fileno(), start, end)
            return "copy"
        except BaseException:
            target.unlink(missing_ok=True)
            raise


def _data_extents(fd: int, size: int) -> list[tuple[int, int]]:
    """``(start, end)`` of each data extent (SEEK_DATA/SEEK_HOLE; all of it if unsupported)."""
    extents = []
    pos = 0
    while pos < size:
        try:
            start = os.lseek(fd, pos, os.SEEK_DATA)
        except OSError as exc:
            if exc.errno == errno.ENXIO:  # only a hole is left
                break
            return [(0, size)]
        end = os.lseek(fd, start, os.SEEK_HOLE)
        extents.append((start, end))
        pos = end
    return extents


def _copy_range(src: int, dst: int, start: int, end: int) -> None:
    """Copy ``[start, end)`` in the kernel; through a buffer where it cannot (other fs)."""
    pos = start
    while pos < end:
        try:
            n = os.copy_file_range(src, dst, end - pos, pos, pos)
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL):
                raise
            block = os.pread(src, min(end - pos, 4 * units.Mi), pos)
            n = os.pwrite(dst, block, pos) if block else 0
        if n == 0:
            raise OSError(errno.EIO, f"copied nothing at offset {pos}")
        pos += n


class FileMedia:
    """``device_path`` is the sparse file itself: no root needed."""

    name = "file"

    def attach(self, file: Path) -> str:
        return str(file)

    def detach(self, device: str, file: Path) -> None:
        return None

    def cleanup(self, file: Path) -> list[str]:
        return []


class LoopMedia:
    """Each online volume is a loop device with direct I/O, like an iSCSI LUN on the host."""

    name = "loop"

    def __init__(self, run: Runner = run_command, *, sector_size: int = 512) -> None:
        self._run = run
        # 512 is what EDF's iSCSI LUNs show; tests and benchmarks also use 4096.
        self._sector_args = [] if sector_size == 512 else [f"--sector-size={sector_size}"]

    def attach(self, file: Path) -> str:
        try:
            out = self._run(
                ["losetup", "--find", "--show", "--direct-io=on", *self._sector_args, str(file)]
            )
        except (subprocess.CalledProcessError, OSError) as exc:
            raise MediaError(f"losetup failed for {file}: {_stderr(exc)}") from exc
        device = out.strip()
        if not device.startswith("/dev/"):
            raise MediaError(f"losetup printed no device for {file}: {out!r}")
        return device

    def detach(self, device: str, file: Path) -> None:
        try:
            self._run(["losetup", "-d", device])
        except (subprocess.CalledProcessError, OSError) as exc:
            # Already gone is fine: someone (a test, an admin) detached it.
            if device not in self.devices_of(file):
                return
            raise MediaError(f"losetup -d {device} failed: {_stderr(exc)}") from exc

    def devices_of(self, file: Path) -> list[str]:
        try:
            out = self._run(["losetup", "-j", str(file)])
        except (subprocess.CalledProcessError, OSError):
            return []
        # "/dev/loop3: []: (/path/file)" per line.
        return [line.split(":", 1)[0] for line in out.splitlines() if line.startswith("/dev/")]

    def cleanup(self, file: Path) -> list[str]:
        found = self.devices_of(file)
        for device in found:
            LOG.warning("detaching stale loop device %s of %s", device, file)
            self.detach(device, file)
        return found


def _stderr(exc: BaseException) -> str:
    if isinstance(exc, subprocess.CalledProcessError):
        return (exc.stderr or "").strip() or str(exc)
    return str(exc)


def make_media(name: str, run: Runner = run_command) -> Media:
    if name == "file":
        return FileMedia()
    if name == "loop":
        return LoopMedia(run)
    raise ValueError(f"unknown media {name!r} (file or loop)")
