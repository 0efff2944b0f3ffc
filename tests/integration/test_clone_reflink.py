"""A clone on a filesystem with reflinks shares its source's extents instead of copying them.

``copy_volume_file`` tries ``FICLONE`` first (XFS with ``reflink=1``, btrfs) and copies the data
extents elsewhere; this runs on a fresh XFS on a loop device (root, ``mkfs.xfs``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from oslo_utils import units

from datera_glance.simulator.media import copy_volume_file

pytestmark = pytest.mark.root


@pytest.fixture
def xfs(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a filesystem needs root")
    if shutil.which("mkfs.xfs") is None:
        pytest.skip("mkfs.xfs is missing (apt-get install xfsprogs)")
    image, mnt = tmp_path / "xfs.img", tmp_path / "mnt"
    mnt.mkdir()
    with open(image, "wb") as f:
        f.truncate(1 * units.Gi)
    subprocess.run(["mkfs.xfs", "-q", "-m", "reflink=1", str(image)], check=True)
    subprocess.run(["mount", "-o", "loop", str(image), str(mnt)], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


def test_reflink_where_the_filesystem_has_them(xfs: Path, tmp_path: Path) -> None:
    src, dst = xfs / "src.img", xfs / "dst.img"
    data = os.urandom(8 * units.Mi)
    with open(src, "wb") as f:
        f.truncate(256 * units.Mi)
        f.write(data)
    assert copy_volume_file(src, dst) == "reflink"
    assert dst.read_bytes()[: len(data)] == data and dst.stat().st_size == 256 * units.Mi
    with open(dst, "r+b") as f:
        f.write(b"x" * 4096)  # copy on write: the source keeps its bytes
    assert src.read_bytes()[:4096] == data[:4096]
    # Across filesystems there is no reflink: the data extents are copied, holes stay holes.
    other = tmp_path / "copy.img"
    assert copy_volume_file(src, other) == "copy"
    assert other.read_bytes()[: len(data)] == data
    assert other.stat().st_blocks * 512 < 64 * units.Mi
