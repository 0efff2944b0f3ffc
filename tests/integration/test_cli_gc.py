"""``datera-glance gc``: the leftovers of dead uploads go, nothing else is touched.

A real ``datera-glance put`` is SIGKILLed in the middle of an upload (its stdin still open, so
it is blocked inside ``Store.add`` with the volume attached); ``gc --older-than 0 --apply`` must
then remove its app instance and loop device while a second, live upload in the same tenant,
a complete image and another tenant's incomplete app instance survive.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from datera_glance import ownership, upload_state
from datera_glance.edf import ClientConfig, EdfClient
from datera_glance.simulator import Simulator
from tests.plugins.cli import SCRIPT, Cli
from tests.plugins.simulator import loop_devices_on

OTHER_TENANT = "/root/tenant_b"


def ais(sim: Simulator) -> dict[str, dict[str, Any]]:
    return {ai["uuid"]: ai for ai in sim.state()["app_instances"]}


def client(sim: Simulator, tenant: str = "/root") -> EdfClient:
    return EdfClient(
        ClientConfig(host=sim.host, port=sim.port, username="admin", password="password",
                     tenant=tenant, ssl=False)
    )  # fmt: skip


class Upload:
    """``datera-glance put -`` fed by the test; blocked inside ``Store.add`` until fed more."""

    def __init__(self, cli: Cli, sim: Simulator) -> None:
        self.sim = sim
        self.proc = subprocess.Popen(
            [str(SCRIPT), "put", "-", "--config-file", str(cli.conf), "--json"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.data = os.urandom(3 * 1024 * 1024)
        assert self.proc.stdin is not None
        self.proc.stdin.write(self.data)
        self.proc.stdin.flush()
        self.ai = self._wait_for_record()

    def _wait_for_record(self, timeout: float = 60.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for ai in ais(self.sim).values():
                mine = ai["metadata"].get(upload_state.PID) == str(self.proc.pid)
                if mine and ai["device_path"]:
                    return ai
            assert self.proc.poll() is None, self.proc.communicate()
            time.sleep(0.1)
        raise AssertionError("the upload never recorded itself")

    def finish(self) -> dict[str, Any]:
        more = os.urandom(1024 * 1024 + 17)
        out, err = self.proc.communicate(more, timeout=120)
        assert self.proc.returncode == 0, err
        self.data += more
        doc: dict[str, Any] = json.loads(out)
        return doc

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream:
                stream.close()


@pytest.fixture
def uploads() -> Iterator[list[Upload]]:
    started: list[Upload] = []
    yield started
    for upload in started:
        upload.kill()


@pytest.mark.root
def test_gc_removes_a_killed_upload_only(
    loop_simulator: Simulator,
    cli_factory: Callable[..., Cli],
    uploads: list[Upload],
    tmp_path: Path,
) -> None:
    sim = loop_simulator
    cli = cli_factory(sim)
    image = tmp_path / "complete.raw"
    image.write_bytes(os.urandom(1024 * 1024 + 5))
    complete = cli.json("put", str(image))["id"]
    other = client(sim, OTHER_TENANT)
    other.ensure_tenant()
    foreign = str(uuid.uuid4())
    other.create_app_instance(f"OS-IMAGE-{foreign}", uuid=foreign, size_gib=1)
    other.close()

    dead = Upload(cli, sim)
    uploads.append(dead)
    live = Upload(cli, sim)
    uploads.append(live)
    dead.kill()
    dead_file = Path(dead.ai["file"])
    assert loop_devices_on(dead_file.parent.parent), "the killed upload had its device attached"

    states = {i["id"]: i["state"] for i in cli.json("ls")["images"]}
    assert states == {complete: "complete", dead.ai["uuid"]: "orphan", live.ai["uuid"]: "uploading"}
    dry = cli.json("gc", "--older-than", "0")
    assert [(e["id"], e["action"]) for e in dry["leftovers"]] == [(dead.ai["uuid"], "would remove")]
    assert dead.ai["uuid"] in ais(sim)

    applied = cli.run("gc", "--older-than", "0", "--apply")
    assert applied.rc == 0, applied.err
    assert f"{dead.ai['uuid']}" in applied.out and "removed" in applied.out

    left = ais(sim)
    assert set(left) == {complete, live.ai["uuid"], foreign}
    assert left[foreign]["tenant"] == OTHER_TENANT
    assert dead.ai["device_path"] not in sim.state()["loop_devices"]
    out = subprocess.run(["losetup", "-j", str(dead_file)], capture_output=True, text=True)
    assert out.stdout == ""
    records = [p.name for p in cli.conf.parent.joinpath("locks").glob("*.json")]
    assert not [name for name in records if dead.ai["uuid"] in name], records

    finished = live.finish()
    assert finished["size"] == len(live.data)
    verified = cli.json("verify", "--all")
    assert verified["ok"] is True and len(verified["images"]) == 2
    assert cli.json("gc", "--older-than", "0")["leftovers"] == []


def _incomplete(edf: EdfClient, record: dict[str, str] | None) -> str:
    image_id = str(uuid.uuid4())
    ai = edf.create_app_instance(
        f"OS-IMAGE-{image_id}", uuid=image_id, size_gib=1, descr=ownership.marker(image_id)
    )
    if record is not None:
        edf.put_metadata(ai.id, record)
    return image_id


def test_gc_judges_other_hosts_by_heartbeat(simulator: Simulator, cli: Cli) -> None:
    """Another host's upload is live while its heartbeat is younger than --older-than; this
    host's while its process runs with the recorded start (a reused pid does not count)."""
    edf = client(simulator)
    now = time.time()

    def record(host: str, heartbeat: float, pid: int = 4242, start: str = "x/1") -> dict[str, str]:
        return {
            upload_state.HOST: host,
            upload_state.PID: str(pid),
            upload_state.PROCESS_START: start,
            upload_state.STARTED_AT: upload_state.timestamp(heartbeat - 60),
            upload_state.HEARTBEAT: upload_state.timestamp(heartbeat),
        }

    stale = _incomplete(edf, record("glance-2.example", now - 2 * 3600))
    fresh = _incomplete(edf, record("glance-2.example", now - 60))
    mine = upload_state.process_start(os.getpid())
    assert mine is not None
    running = _incomplete(edf, record(upload_state.host_name(), now, os.getpid(), mine))
    reused = _incomplete(edf, record(upload_state.host_name(), now, os.getpid(), "old-boot/7"))
    recordless = _incomplete(edf, None)
    edf.close()

    doc = cli.json("gc")
    reasons = {e["id"]: e["reason"] for e in doc["leftovers"]}
    assert set(reasons) == {stale, reused, recordless}
    assert re.fullmatch(r"last heartbeat from glance-2\.example 72\d\d s ago", reasons[stale])
    assert reasons[reused] == f"process {os.getpid()} on this host is gone (pid reused)"
    assert reasons[recordless] == "incomplete, no upload record"
    table = cli.ok("gc").out
    assert table.endswith("dry run: pass --apply to remove them\n")
    assert set(ais(simulator)) == {stale, fresh, running, reused, recordless}

    applied = cli.json("gc", "--apply")
    assert sorted(e["action"] for e in applied["leftovers"]) == ["removed"] * 3
    assert set(ais(simulator)) == {fresh, running}
    assert {i["id"]: i["state"] for i in cli.json("ls")["images"]} == {
        fresh: "uploading",
        running: "uploading",
    }
    assert [e["id"] for e in cli.json("gc", "--older-than", "30s")["leftovers"]] == [fresh]
    assert cli.ok("gc", "--older-than", "30s", "--apply").out.count("removed") == 1
    assert set(ais(simulator)) == {running}
