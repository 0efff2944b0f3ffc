"""This host as the driver's records name it: its boot, its name, its processes; and the one
kernel setting the copier's speed depends on (``thp_mode``).

The attach records under ``lock_path`` (``attach``) and the upload records on the cluster
(``upload_state``) both name processes of this host and both ask whether such a process still
runs; this module answers for both. Knows nothing of glance, EDF or devices.
"""

from __future__ import annotations

import os
import socket

#: ``/proc/PID/stat`` states of a process that has exited (zombie, dead): not running, even
#: though ``kill(pid, 0)`` succeeds until its parent (or init) reaps it.
_EXITED = ("Z", "X")


def boot_id() -> str:
    """This boot of the host ("" if unknown): records of an earlier boot name processes and
    devices that are gone."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as f:
            return f.read().strip()
    except OSError:
        return ""


def host_name() -> str:
    return socket.gethostname()


THP_ENABLED = "/sys/kernel/mm/transparent_hugepage/enabled"


def thp_mode(path: str = THP_ENABLED) -> str:
    """The kernel's transparent huge page mode: ``always``, ``madvise`` or ``never`` ("" when
    the kernel has none or it cannot be read). The copier's buffers ask for huge pages, and
    device I/O into them ran about twice as fast as into small pages; ``never`` denies them."""
    try:
        with open(path, encoding="ascii") as f:
            text = f.read()
    except OSError:
        return ""
    return text.split("[", 1)[1].split("]", 1)[0] if "[" in text and "]" in text else ""


def stat_fields(pid: int) -> list[str] | None:
    """The fields of ``/proc/PID/stat`` after the command name (state first); None if there
    is no such process. The command name may hold spaces and parentheses: split after the
    last ")"."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            return f.read().rpartition(")")[2].split()
    except OSError:
        return None


def running(pid: int) -> bool:
    """Is process ``pid`` running? A zombie is not: the workers of a crashed glance-api stay
    zombies until init reaps them, which can be after the restarted workers have swept
    (1-2 s measured)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: it exists
    fields = stat_fields(pid)
    if fields is None:
        return not os.path.isdir("/proc/self")  # no procfs: trust kill
    return not fields or fields[0] not in _EXITED


def group_members(pgid: int) -> list[int]:
    """Processes of process group ``pgid`` that exist now, zombies included (a killed
    process group is gone only once all of them are reaped)."""
    members = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = stat_fields(int(entry))
            if fields is not None and len(fields) > 2 and int(fields[2]) == pgid:
                members.append(int(entry))
    return members


def start_ticks(pid: int) -> str | None:
    """When process ``pid`` started, in clock ticks since boot (``/proc/PID/stat`` field 22):
    within one boot, a later process with the same pid has another. None if there is no such
    process, it has exited (a zombie, as for ``running``), or there is no procfs."""
    fields = stat_fields(pid)
    if fields is None or len(fields) <= 19 or fields[0] in _EXITED:
        return None
    return fields[19]


def process_start(pid: int) -> str | None:
    """An identity of process ``pid`` that a later process with the same pid does not share,
    across boots too: the boot id and ``start_ticks``; None where either is unknown."""
    ticks = start_ticks(pid)
    boot = boot_id()
    if ticks is None or not boot:
        return None
    return f"{boot}/{ticks}"
