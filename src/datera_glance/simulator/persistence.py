"""The state on disk: ``state.json`` (a snapshot) and ``state.journal`` (the changes since).

A request's changes are one journal line, appended and fdatasync'ed before its answer, so a
request costs the size of what it changed, not of the whole state. A crash leaves a journal
whose last line may be torn: that request was never answered, and its line is ignored. The
snapshot is rewritten (atomically: tmp + fsync + rename) at start, at stop, and when the journal
has grown past twice the snapshot: an O(state) write every O(state) of changes, so the cost per
request stays flat on average.

The data directory is private to the simulator's user (devstack runs it as root): it is made
0700, or refused when another user owns it or may write it (``ensure_data_dir``); every file is
written through a new ``O_EXCL|O_NOFOLLOW`` file renamed into place (``write_file_atomic``), so
a planted symbolic link is replaced, never followed.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import threading
from pathlib import Path
from typing import Any

from datera_glance.simulator.model import State, Stored, collection_of, to_json
from datera_glance.simulator.work import Work

#: The journal may grow to this (or twice the snapshot) before the snapshot is rewritten.
MIN_JOURNAL_BYTES = 16 * 1024 * 1024

SNAPSHOT_FILE = "state.json"
JOURNAL_FILE = "state.journal"
#: The data directory's own subdirectories (volume files; the TLS certificate and key).
PRIVATE_DIRS = ("volumes", "tls")


class UnsafeDataDir(ValueError):
    """Another user could change what the simulator reads or writes in its data directory."""


class StateFiles:
    """Changes recorded under the cluster's state lock, written by group commit outside it.

    ``save(obj)``/``save_removal(obj)`` note a changed object; ``commit()`` (end of request,
    under the lock) turns the request's changes into one journal line; ``flush()`` (outside
    the lock) appends every committed line with one fdatasync for concurrent requests.
    """

    def __init__(
        self, data_dir: Path, work: Work, *, min_journal_bytes: int = MIN_JOURNAL_BYTES
    ) -> None:
        self.data_dir = data_dir
        self.min_journal_bytes = min_journal_bytes
        self.snapshot_path = data_dir / SNAPSHOT_FILE
        self.journal_path = data_dir / JOURNAL_FILE
        self.work = work
        self._changes: dict[tuple[str, str], tuple[str, Any, Stored | None]] = {}
        self._pending: list[bytes] = []  # committed lines not yet on disk
        self._seq = 0  # lines committed (ever, across restarts)
        self._written = 0  # lines on disk
        self._journal_bytes = 0
        self._snapshot_bytes = 0
        self._seq_lock = threading.Lock()  # _pending, _seq
        self._write_lock = threading.Lock()  # the files

    # ---- start -----------------------------------------------------------------------

    def load(self) -> State:
        """The snapshot with the journal replayed on it (a fresh state when there is none)."""
        if not self.snapshot_path.exists():
            state = State()
            seq = 0
        else:
            obj = json.loads(self.snapshot_path.read_text())
            state = State.from_json(obj)
            seq = int(obj.get("journal_seq", 0))
        for line in _journal_lines(self.journal_path):
            if line["seq"] <= seq:
                continue  # already in the snapshot (a crash between its rename and the reset)
            for change in line["changes"]:
                if "value" in change:
                    state.put(change["collection"], change["value"])
                else:
                    state.delete(change["collection"], change["key"])
            seq = line["seq"]
        self._seq = self._written = seq
        return state

    # ---- a request's changes ---------------------------------------------------------

    def save(self, obj: Stored) -> None:
        """Note that ``obj`` was created or changed (under the state lock)."""
        collection, key = collection_of(obj)
        self._changes[(collection, json.dumps(key))] = (collection, key, obj)

    def save_removal(self, obj: Stored) -> None:
        """Note that ``obj`` was deleted (under the state lock)."""
        collection, key = collection_of(obj)
        self._changes[(collection, json.dumps(key))] = (collection, key, None)

    def commit(self) -> None:
        """Make the noted changes one journal line (under the state lock)."""
        if not self._changes:
            return
        changes = []
        for collection, key, obj in self._changes.values():
            if obj is None:
                changes.append({"collection": collection, "key": key})
            else:
                changes.append({"collection": collection, "value": to_json(obj)})
                self.work.serialized += 1
        self._changes.clear()
        with self._seq_lock:
            self._seq += 1
            line = json.dumps({"seq": self._seq, "changes": changes}, sort_keys=True)
            self._pending.append(line.encode() + b"\n")

    def flush(self) -> None:
        """Persist every line committed so far (group commit: one fdatasync for many)."""
        with self._seq_lock:
            target = self._seq
        if self._written >= target:
            return
        with self._write_lock:
            if self._written >= target:
                return
            with self._seq_lock:
                seq, lines, self._pending = self._seq, self._pending, []
            data = b"".join(lines)
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
            fd = os.open(self.journal_path, flags, 0o600)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fdatasync(fd)
            finally:
                os.close(fd)
            self._journal_bytes += len(data)
            self.work.written += len(data)
            self._written = seq

    # ---- snapshot --------------------------------------------------------------------

    def needs_compaction(self) -> bool:
        return self._journal_bytes > max(self.min_journal_bytes, 2 * self._snapshot_bytes)

    def compact(self, state: State) -> None:
        """Write ``state`` as the snapshot and empty the journal (under the state lock)."""
        self.commit()
        with self._write_lock, self._seq_lock:
            obj = state.to_json()
            obj["journal_seq"] = self._seq
            data = json.dumps(obj, indent=1, sort_keys=True).encode()
            self.work.serialized += sum(1 for _ in state.objects())
            write_file_atomic(self.snapshot_path, data)
            # Empty the journal only now: until the rename, the old snapshot needs it.
            write_file_atomic(self.journal_path, b"")
            self.work.written += len(data)
            self._snapshot_bytes = len(data)
            self._journal_bytes = 0
            self._pending = []
            self._written = self._seq


def _journal_lines(path: Path) -> list[dict[str, Any]]:
    """The journal's complete lines; a torn or garbled tail (a crash mid-write) ends it."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return []
    lines = []
    for text in raw.split(b"\n")[:-1]:  # the part after the last newline is torn
        try:
            line = json.loads(text)
        except ValueError:
            break
        if not isinstance(line, dict) or not isinstance(line.get("seq"), int):
            break
        lines.append(line)
    return lines


def write_file_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write ``data`` so that a crash leaves either the old or the new file, never half of one.

    The new file is created exclusively (``O_EXCL|O_NOFOLLOW``, ``mode``) and renamed over
    ``path``: whatever was there, a symbolic link included, is replaced, never written through,
    and an old file's mode is not kept.
    """
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)  # left by a crash
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(tmp, flags, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


# ---- the data directory: the simulator's user's alone -----------------------------------


def ensure_data_dir(data_dir: Path) -> None:
    """Make ``data_dir`` (0700) or check it, its subdirectories and state files; else raise
    ``UnsafeDataDir`` naming what to fix.

    Refused: a directory another user owns or that group or others may write; a symbolic link
    another user made; a parent directory anyone may write without the sticky bit (anyone
    could swap the directory); a state file that is a symbolic link or someone else's.
    """
    if data_dir.is_symlink():
        link_owner = data_dir.lstat().st_uid
        if link_owner not in (0, os.geteuid()):
            raise UnsafeDataDir(
                f"data directory {data_dir} is a symbolic link made by uid {link_owner}: "
                "use the real directory as --data-dir"
            )
    real = Path(os.path.realpath(data_dir))
    for parent in real.parents:
        try:
            mode = parent.stat().st_mode
        except FileNotFoundError:
            continue  # made below, by this user
        if mode & stat.S_IWOTH and not mode & stat.S_ISVTX:
            raise UnsafeDataDir(
                f"{parent}, a parent of the data directory {data_dir}, can be written by others "
                f"(mode {stat.S_IMODE(mode):04o}, no sticky bit): anyone could replace the data "
                "directory; choose a --data-dir under a directory only root can write"
            )
    real.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.mkdir(real, 0o700)
    _check_private_dir(real, what="data directory")
    for name in PRIVATE_DIRS:
        if os.path.lexists(real / name):
            _check_private_dir(real / name, what="data directory's subdirectory")
            os.chmod(real / name, 0o700)
    for name in (SNAPSHOT_FILE, JOURNAL_FILE):
        if os.path.lexists(real / name):
            _check_own_file(real / name)


def ensure_private_dir(path: Path) -> None:
    """Make ``path`` (0700) or check that it is the simulator's user's alone and make it 0700."""
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        _check_private_dir(path, what="directory")
        os.chmod(path, 0o700)


def _check_private_dir(path: Path, *, what: str) -> None:
    st = path.lstat()
    euid = os.geteuid()
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        raise UnsafeDataDir(f"{what} {path} is not a directory (a symbolic link or a file)")
    if st.st_uid != euid:
        raise UnsafeDataDir(
            f"{what} {path} is owned by uid {st.st_uid}, not by uid {euid} that runs the "
            f"simulator: that user could replace its files. Give it to uid {euid} (chown -R) "
            "or choose another --data-dir"
        )
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise UnsafeDataDir(
            f"{what} {path} can be written by group or others "
            f"(mode {stat.S_IMODE(st.st_mode):04o}): chmod 700 {path}"
        )


def _check_own_file(path: Path) -> None:
    st = path.lstat()
    if stat.S_ISLNK(st.st_mode):
        raise UnsafeDataDir(f"{path} is a symbolic link: the simulator writes only its own files")
    if st.st_uid != os.geteuid():
        raise UnsafeDataDir(
            f"{path} is owned by uid {st.st_uid}, not by uid {os.geteuid()} that runs the "
            "simulator: chown it, or choose another --data-dir"
        )
