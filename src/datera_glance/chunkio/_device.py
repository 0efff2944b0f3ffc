"""An open device or file and what O_DIRECT needs to know about it; the aligned buffers' end."""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import stat
import struct
from dataclasses import dataclass
from typing import Any

from oslo_utils import units

from datera_glance.chunkio.errors import DirectIOUnsupported

LOG = logging.getLogger(__name__)

# linux/fs.h: logical sector size (int) and device size in bytes (u64).
_BLKSSZGET = 0x1268
_BLKGETSIZE64 = 0x80081272
#: O_DIRECT on a regular file needs the underlying device's logical block size: 4096 is safe
#: for every device in use (512 and 4096 both occur). Buffer sizes are multiples of it.
FILE_BLOCK_SIZE = 4 * units.Ki


def round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def check_buffer_args(buffer_size: int, depth: int) -> None:
    if buffer_size <= 0 or buffer_size % FILE_BLOCK_SIZE:
        raise ValueError(f"buffer_size must be a positive multiple of 4096, not {buffer_size}")
    if depth < 1:
        raise ValueError(f"depth must be at least 1, not {depth}")


def release_buffers(buffers: list[Any]) -> None:
    """Free aligned buffers now; one a consumer still views goes with its last reference."""
    for buf in buffers:
        try:
            buf.close()
        except BufferError:
            LOG.debug("aligned buffer still exported at close; left to the collector")
    buffers.clear()


@dataclass
class Target:
    """An open device or file: its fd and what O_DIRECT needs to know about it."""

    path: str
    fd: int
    direct: bool
    block_size: int  # I/O offsets and lengths are multiples of this
    capacity: int | None  # bytes; None: no end (character devices)
    is_block: bool
    is_regular: bool

    @classmethod
    def open(cls, path: str, *, write: bool, allow_buffered: bool) -> Target:
        flags = (os.O_WRONLY if write else os.O_RDONLY) | os.O_CLOEXEC
        direct = True
        try:
            fd = os.open(path, flags | os.O_DIRECT)
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                raise
            if not allow_buffered:
                raise DirectIOUnsupported(
                    errno.EINVAL,
                    "refuses O_DIRECT (pass allow_buffered=True for buffered I/O)",
                    path,
                ) from None
            LOG.warning("%s refuses O_DIRECT; using buffered I/O", path)
            fd = os.open(path, flags)
            direct = False
        try:
            return cls._describe(path, fd, direct)
        except BaseException:
            os.close(fd)
            raise

    @classmethod
    def _describe(cls, path: str, fd: int, direct: bool) -> Target:
        st = os.fstat(fd)
        is_block = stat.S_ISBLK(st.st_mode)
        is_regular = stat.S_ISREG(st.st_mode)
        capacity: int | None = None
        block_size = 1
        if is_block:
            raw = fcntl.ioctl(fd, _BLKGETSIZE64, bytes(8))
            capacity = struct.unpack("Q", raw)[0]
            raw = fcntl.ioctl(fd, _BLKSSZGET, bytes(4))
            block_size = struct.unpack("i", raw)[0]
        elif is_regular:
            capacity = st.st_size
            block_size = FILE_BLOCK_SIZE
        if not direct:
            block_size = 1  # the page cache takes any offset and length
        return cls(path, fd, direct, block_size, capacity, is_block, is_regular)

    @property
    def read_alignment(self) -> int:
        """What reads are aligned to: at least a page where O_DIRECT would take less.

        Storage under a 512-byte-sector device is usually 4 KiB underneath; a read that starts
        off a 4 KiB boundary measured 1.5 x slower per 1 MiB on the loop simulator. Reading
        into the last partial page of a device only comes back short.
        """
        return max(self.block_size, FILE_BLOCK_SIZE) if self.block_size > 1 else 1

    def fsync(self) -> None:
        try:
            os.fsync(self.fd)
        except OSError as exc:
            # Character devices (buffered mode only) have nothing to sync.
            if exc.errno != errno.EINVAL or self.is_block or self.is_regular:
                raise OSError(exc.errno, exc.strerror, self.path) from None

    def close(self) -> None:
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            os.close(fd)
