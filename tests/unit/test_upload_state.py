"""Upload-state records, liveness and the heartbeat (``datera_glance.upload_state``)."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import threading
from typing import Any

import pytest

from datera_glance import upload_state as us


class Recorder:
    """Stands in for ``EdfClient.put_metadata``; fails the first ``fail`` calls like a cluster
    that is down (ConnectionFailed is an EdfError, an Exception)."""

    def __init__(self, fail: int = 0) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.fail = fail
        self.beat = threading.Event()

    def put_metadata(self, ai: str, data: dict[str, Any]) -> dict[str, Any]:
        self.calls.append((ai, dict(data)))
        if us.HEARTBEAT in data and len(data) == 1:
            self.beat.set()
        if self.fail:
            self.fail -= 1
            raise ConnectionError("cluster down")
        return data


def test_start_record_identifies_this_process() -> None:
    record = us.start_record(clock=lambda: 1_790_000_000.0)
    assert record[us.HOST] == us.host_name()
    assert record[us.PID] == str(os.getpid())
    assert record[us.PROCESS_START] == us.process_start(os.getpid())
    assert record[us.STARTED_AT] == record[us.HEARTBEAT] == "2026-09-21T14:13:20Z"
    parsed = us.UploadRecord.from_metadata(record)
    assert parsed is not None and parsed.heartbeat == 1_790_000_000.0


@pytest.mark.parametrize(
    "metadata",
    [{}, {us.HOST: "h"}, {us.HOST: "h", us.PID: "x"}, {us.HOST: "", us.PID: "12"}],
)
def test_no_record(metadata: dict[str, str]) -> None:
    assert us.UploadRecord.from_metadata(metadata) is None


def test_process_start_tells_a_later_process_apart() -> None:
    """A reused pid belongs to a process started later: its start (in clock ticks) differs."""
    mine = us.process_start(os.getpid())
    threading.Event().wait(0.05)  # more than one clock tick (10 ms)
    with subprocess.Popen(["sleep", "5"]) as later:
        try:
            theirs = us.process_start(later.pid)
        finally:
            later.kill()
    assert mine and theirs and mine.split("/")[0] == theirs.split("/")[0]
    assert int(theirs.split("/")[1]) > int(mine.split("/")[1])
    assert us.process_start(2**22 + 1) is None  # above pid_max's default: no such process


def test_an_exited_but_unreaped_upload_process_is_gone() -> None:
    """A killed glance-api worker is a zombie until init reaps it; ``kill(pid, 0)`` and
    ``/proc/PID/stat`` both still answer. Its upload is dead, the same answer the attach
    records get (datera_glance.host.running)."""
    with subprocess.Popen(["sleep", "30"]) as child:
        try:
            started = us.process_start(child.pid)
            record = us.UploadRecord(us.host_name(), child.pid, started or "", None, None)
            judge = us.Judge(max_age=3600)
            assert started and judge.live(record)[0]
            os.kill(child.pid, 9)
            for _ in range(3000):  # not waited for: a zombie
                with open(f"/proc/{child.pid}/stat", encoding="ascii") as f:
                    if f.read().rpartition(")")[2].split()[0] == "Z":
                        break
                threading.Event().wait(0.01)
            else:
                raise AssertionError("the child did not exit")
            assert us.process_start(child.pid) is None
            assert judge.live(record) == (False, f"process {child.pid} on this host is gone")
        finally:
            child.kill()


def test_judge_this_host_by_process() -> None:
    judge = us.Judge(max_age=3600, this_host="here", identify={1: "boot/5"}.get)
    alive = us.UploadRecord("here", 1, "boot/5", None, None)
    assert judge.live(alive) == (True, "process 1 on this host is running")
    reused = us.UploadRecord("here", 1, "boot/4", None, None)
    assert judge.live(reused) == (False, "process 1 on this host is gone (pid reused)")
    gone = us.UploadRecord("here", 2, "boot/5", None, None)
    assert judge.live(gone) == (False, "process 2 on this host is gone")


def test_judge_other_hosts_by_heartbeat() -> None:
    judge = us.Judge(max_age=600, this_host="here", clock=lambda: 10_000.0)
    assert judge.live(us.UploadRecord("there", 1, "", None, 9_500.0))[0] is True
    assert judge.live(us.UploadRecord("there", 1, "", None, 9_400.0)) == (
        False,
        "last heartbeat from there 600 s ago",
    )
    assert judge.live(us.UploadRecord("there", 1, "", None, None))[0] is False
    at_once = us.Judge(max_age=0, this_host="here", clock=lambda: 10_000.0)
    assert at_once.live(us.UploadRecord("there", 1, "", None, 10_000.0))[0] is False


def test_a_heartbeat_from_the_future_is_judged_against_the_same_bound() -> None:
    """Before: the age of a heartbeat in the future was negative, so it counted as live for
    ever (every retry of the image got ``Duplicate`` and ``gc`` never removed it). Now a
    heartbeat counts only within ``max_age`` of now on either side (clock skew between
    hosts up to that is tolerated); further ahead, the record is dead and says why."""
    now = [10_000.0]
    judge = us.Judge(max_age=300, this_host="here", clock=lambda: now[0])
    far = us.UploadRecord("there", 1, "", None, 10_000.0 + 10**9)
    assert judge.live(far) == (
        False,
        "heartbeat from there 1000000000 s in the future: the clocks disagree",
    )
    skewed = us.UploadRecord("there", 1, "", None, 10_100.0)  # a clock 100 s ahead
    assert judge.live(skewed) == (True, "there sent a heartbeat 100 s in the future")
    now[0] = 10_100.0 + 300  # and never again: dead after max_age, as any other
    assert judge.live(skewed)[0] is False


def test_image_length() -> None:
    assert us.image_length({"type": "image", "length": "5"}) == 5
    assert us.image_length({"type": "image"}) is None
    assert us.image_length({"length": "5"}) is None
    assert us.image_length({"type": "image", "length": "x"}) is None


def test_recorded_writes_the_record_and_beats_until_the_end() -> None:
    client = Recorder(fail=0)
    with us.recorded(client, "ai-1", interval=0.01):
        assert client.beat.wait(5)
    calls = len(client.calls)
    first = client.calls[0]
    assert first[0] == "ai-1" and set(first[1]) == {
        us.HOST, us.PID, us.PROCESS_START, us.STARTED_AT, us.HEARTBEAT,
    }  # fmt: skip
    assert all(set(data) == {us.HEARTBEAT} for _, data in client.calls[1:])
    threading.Event().wait(0.05)
    assert len(client.calls) == calls  # stopped


def test_failed_heartbeat_does_not_stop_the_beat() -> None:
    client = Recorder()
    beat = us.Heartbeat(client, "ai-2", interval=0.01)
    client.fail = 2
    beat.start()
    try:
        deadline = threading.Event()
        while len(client.calls) < 4 and not deadline.wait(0.01):
            pass
    finally:
        beat.stop()
    assert len(client.calls) >= 4


def test_a_failed_record_write_raises() -> None:
    client = Recorder(fail=1)
    with pytest.raises(ConnectionError), us.recorded(client, "ai-3"):
        pytest.fail("the block must not run without a record")


def test_judge_upload_of_this_very_process_by_its_recorded_block() -> None:
    """A retry in the same glance-api worker finds its own ended upload's record: the process
    runs (gc's judgement says live), the upload does not."""
    judge = us.Judge(max_age=3600)
    record = us.UploadRecord.from_metadata(us.start_record())
    assert record is not None
    assert judge.live(record)[0] is True
    ended = (False, f"the upload of process {os.getpid()} on this host (this one) has ended")
    assert us.judge_upload(judge, record, "ai-4") == ended
    with us.recorded(Recorder(), "ai-4"):
        assert us.judge_upload(judge, record, "ai-4")[0] is True
        assert us.judge_upload(judge, record, "ai-5") == ended
    assert us.judge_upload(judge, record, "ai-4") == ended


def test_judge_upload_of_other_processes_is_the_judges() -> None:
    judge = us.Judge(max_age=600, clock=lambda: 10_000.0)
    mine = us.UploadRecord.from_metadata(us.start_record())
    assert mine is not None
    reused = dataclasses.replace(mine, process_start="another-boot/1")
    assert us.judge_upload(judge, reused, "ai-6") == judge.live(reused)
    assert judge.live(reused)[1].endswith("(pid reused)")
    there = us.UploadRecord("there", os.getpid(), "", None, 9_500.0)
    assert us.judge_upload(judge, there, "ai-6") == (True, "there sent a heartbeat 500 s ago")


def test_a_failed_record_write_leaves_nothing_recording() -> None:
    judge = us.Judge(max_age=3600)
    record = us.UploadRecord.from_metadata(us.start_record())
    assert record is not None
    with pytest.raises(ConnectionError), us.recorded(Recorder(fail=1), "ai-7"):
        pytest.fail("the block must not run without a record")
    assert us.judge_upload(judge, record, "ai-7")[0] is False
