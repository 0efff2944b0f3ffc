"""Where a volume's bytes live (its *media*): a sparse file, exposed as itself or through a loop
device."""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

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


def create_volume_file(file: Path, size_bytes: int) -> None:
    file.parent.mkdir(parents=True, exist_ok=True)
    with open(file, "xb") as f:
        f.truncate(size_bytes)


def grow_volume_file(file: Path, size_bytes: int) -> None:
    # Only ever grows: EDF refuses shrinking, and the API layer checks that first.
    if os.stat(file).st_size < size_bytes:
        os.truncate(file, size_bytes)


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
