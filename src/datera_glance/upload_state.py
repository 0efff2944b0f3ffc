"""What an image's app instance metadata says about its upload, and whether it is still going.

``Store.add`` records who writes an image (host, pid, process start, start time) in the app
instance's metadata as soon as it creates the app instance, refreshes a heartbeat while the
copier writes, and at the end adds the multihash beside ``checksum``/``length``/``type``.
``datera-glance gc`` reads these back to tell the leftover of a killed upload from an upload in
progress (and ``Store.add`` to decide whether it may replace an incomplete app instance), and
``datera-glance verify`` checks an image against its recorded hashes without glance's database.

Liveness: an upload recorded by this host is live while its process exists (same pid and
same process start, so a reused pid does not count); one recorded by another host is live
while its heartbeat is younger than the caller's limit (and, from a clock ahead of this
host's, less than that limit in the future); one recorded by the very process
asking is live while that process is still in its ``recorded`` block (``judge_upload``).
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from datera_glance.host import host_name, process_start

LOG = logging.getLogger(__name__)

HOST = "upload_host"
PID = "upload_pid"
PROCESS_START = "upload_process_start"
STARTED_AT = "upload_started_at"
HEARTBEAT = "upload_heartbeat"
MULTIHASH_ALGO = "multihash_algo"
MULTIHASH = "multihash"
#: Seconds between heartbeats; far below ``DEFAULT_MAX_AGE``.
HEARTBEAT_INTERVAL = 60.0
#: Another host's upload without a heartbeat for this long is dead: ``gc``'s default
#: ``--older-than`` (deleting is for good, so gc waits long).
DEFAULT_MAX_AGE = 3600.0
#: The limit ``Store.add`` uses before it replaces another host's incomplete upload of the
#: same image: five missed heartbeats. An upload that cannot reach the cluster for that long
#: has failed in all but name, and a longer wait would refuse every retry of the image (glance
#: answers 500) for as long.
REPLACE_MAX_AGE = 5 * HEARTBEAT_INTERVAL

Clock = Callable[[], float]

# App instance ids whose ``recorded`` block runs in this process: a record naming this very
# process is live only while its block runs (the process being alive says nothing).
_recording: set[str] = set()
_recording_lock = threading.Lock()


class MetadataWriter(Protocol):
    """The part of ``EdfClient`` this module uses."""

    def put_metadata(self, ai: str, data: dict[str, Any]) -> dict[str, Any]: ...


def image_length(metadata: Mapping[str, Any]) -> int | None:
    """The image length of a complete image, or None (an upload in progress or a leftover).

    The Store's rule: ``add`` writes ``type: image`` and ``length`` only after the last byte.
    """
    if metadata.get("type") != "image" or metadata.get("length") in (None, ""):
        return None
    try:
        return int(metadata["length"])
    except (TypeError, ValueError):
        return None


def timestamp(seconds: float) -> str:
    """``seconds`` since the epoch as ISO 8601 UTC, e.g. ``2026-12-01T10:00:00Z``."""
    moment = datetime.datetime.fromtimestamp(int(seconds), datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_timestamp(text: Any) -> float | None:
    """The inverse of ``timestamp``; None for a missing or malformed value."""
    if not isinstance(text, str) or not text:
        return None
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.timestamp()


def multihash_metadata(algo: str, hexdigest: str) -> dict[str, str]:
    """The keys ``add`` writes beside ``checksum``: what ``verify`` checks besides md5."""
    return {MULTIHASH_ALGO: algo, MULTIHASH: hexdigest}


def start_record(clock: Clock = time.time) -> dict[str, str]:
    """The upload-state record of an upload starting now in this process."""
    pid = os.getpid()
    now = timestamp(clock())
    return {
        HOST: host_name(),
        PID: str(pid),
        PROCESS_START: process_start(pid) or "",
        STARTED_AT: now,
        HEARTBEAT: now,
    }


@dataclass(frozen=True)
class UploadRecord:
    """An upload-state record read back from metadata."""

    host: str
    pid: int
    process_start: str
    started_at: float | None
    heartbeat: float | None

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any]) -> UploadRecord | None:
        """The record in ``metadata``, or None when there is none (an image written before
        records existed, or an app instance whose upload died before writing it)."""
        try:
            pid = int(metadata.get(PID) or 0)
        except (TypeError, ValueError):
            pid = 0
        host = str(metadata.get(HOST) or "")
        if not host or pid <= 0:
            return None
        return cls(
            host=host,
            pid=pid,
            process_start=str(metadata.get(PROCESS_START) or ""),
            started_at=parse_timestamp(metadata.get(STARTED_AT)),
            heartbeat=parse_timestamp(metadata.get(HEARTBEAT)),
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "pid": self.pid,
            "started_at": timestamp(self.started_at) if self.started_at else None,
            "heartbeat": timestamp(self.heartbeat) if self.heartbeat else None,
        }


@dataclass(frozen=True)
class Judge:
    """Decides whether a recorded upload is still live, as seen from this host.

    :param max_age: seconds after which another host's heartbeat counts as dead.
    """

    max_age: float
    this_host: str = ""
    clock: Clock = time.time
    identify: Callable[[int], str | None] = process_start

    def live(self, record: UploadRecord) -> tuple[bool, str]:
        """``(live, why)`` for ``record``."""
        if record.host == (self.this_host or host_name()):
            current = self.identify(record.pid)
            if current is None:
                return False, f"process {record.pid} on this host is gone"
            if record.process_start and current != record.process_start:
                return False, f"process {record.pid} on this host is gone (pid reused)"
            return True, f"process {record.pid} on this host is running"
        if record.heartbeat is None:
            return False, f"no heartbeat from {record.host}"
        age = self.clock() - record.heartbeat
        if age <= -self.max_age:  # written by a clock far ahead: not evidence of life
            ahead = f"{-age:.0f} s in the future"
            return False, f"heartbeat from {record.host} {ahead}: the clocks disagree"
        if age < 0:  # a clock somewhat ahead: live, until max_age after that time
            return True, f"{record.host} sent a heartbeat {-age:.0f} s in the future"
        if age < self.max_age:
            return True, f"{record.host} sent a heartbeat {age:.0f} s ago"
        return False, f"last heartbeat from {record.host} {age:.0f} s ago"


def judge_upload(judge: Judge, record: UploadRecord, ai_id: str) -> tuple[bool, str]:
    """``judge.live(record)`` for the upload of app instance ``ai_id``, except that a record of
    this very process (an ended upload whose rollback failed, seen by a retry in the same
    glance-api worker) is live only while this process's ``recorded`` block for it runs."""
    pid = os.getpid()
    own = record.host == host_name() and record.pid == pid
    if own and record.process_start in ("", process_start(pid)):
        with _recording_lock:
            in_progress = ai_id in _recording
        if in_progress:
            return True, f"process {pid} on this host (this one) is uploading it"
        return False, f"the upload of process {pid} on this host (this one) has ended"
    return judge.live(record)


class Heartbeat:
    """Refreshes ``upload_heartbeat`` every ``interval`` seconds on its own thread.

    A failed refresh is logged and retried at the next beat: it never fails the upload (the
    worst outcome is another host's ``gc`` taking a stalled upload for a dead one).
    """

    def __init__(
        self,
        client: MetadataWriter,
        ai_id: str,
        *,
        interval: float = HEARTBEAT_INTERVAL,
        clock: Clock = time.time,
    ) -> None:
        self._client = client
        self._ai_id = ai_id
        self._interval = interval
        self._clock = clock
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"heartbeat-{ai_id[:8]}", daemon=True
        )

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._client.put_metadata(self._ai_id, {HEARTBEAT: timestamp(self._clock())})
            except Exception as exc:
                LOG.warning("Upload heartbeat for %s failed: %s", self._ai_id, exc)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()


@contextlib.contextmanager
def recorded(
    client: MetadataWriter, ai_id: str, *, interval: float = HEARTBEAT_INTERVAL
) -> Iterator[None]:
    """Write the start record, then keep a heartbeat going until the block ends."""
    with _recording_lock:
        _recording.add(ai_id)
    try:
        client.put_metadata(ai_id, start_record())
        beat = Heartbeat(client, ai_id, interval=interval)
        beat.start()
        try:
            yield
        finally:
            beat.stop()
    finally:
        with _recording_lock:
            _recording.discard(ai_id)
