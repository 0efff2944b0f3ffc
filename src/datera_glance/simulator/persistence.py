"""The state file ``DATA_DIR/state.json``: read at start, written before each answer.

Writes are atomic (tmp + fsync + rename + fsync of the directory): a crash leaves the old or
the new state, never half of one.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

from datera_glance.simulator.model import State


class StateFile:
    """Snapshots of the state, written by group commit.

    ``save()`` runs under the cluster's state lock and only serialises; ``flush()`` runs
    outside it, so that concurrent requests share one fsync of the newest snapshot.
    """

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.path = data_dir / "state.json"
        self._snapshot = b""
        self._seq = 0  # snapshots taken
        self._written = 0  # snapshots on disk
        self._seq_lock = threading.Lock()
        self._write_lock = threading.Lock()

    def load(self) -> State:
        """The saved state, or a fresh one (only ``/root``) when there is none."""
        if not self.path.exists():
            return State()
        return State.from_json(json.loads(self.path.read_text()))

    def save(self, state: State) -> None:
        """Snapshot ``state`` (the caller holds the state lock); ``flush()`` writes it."""
        data = dump_json(state.to_json())
        with self._seq_lock:
            self._snapshot = data
            self._seq += 1

    def flush(self) -> None:
        """Persist every snapshot taken so far (reads do not wait for others' writes)."""
        with self._seq_lock:
            target = self._seq
        if self._written >= target:
            return
        with self._write_lock:
            if self._written >= target:
                return
            with self._seq_lock:
                seq, data = self._seq, self._snapshot
            self.data_dir.mkdir(parents=True, exist_ok=True)
            write_json_atomic(self.path, data)
            self._written = seq


def dump_json(obj: Any) -> bytes:
    return json.dumps(obj, indent=1, sort_keys=True).encode()


def write_json_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` so that a crash leaves either the old or the new file, never half of one."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
