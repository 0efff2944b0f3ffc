"""The simulator's loop backend: a real loop device per online volume (root)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from oslo_utils import units

from datera_glance.simulator import Simulator
from tests.plugins.simulator import Edf, loop_devices_on

pytestmark = pytest.mark.root


def _loops_of(file: str) -> list[str]:
    out = subprocess.run(["losetup", "-j", file], capture_output=True, text=True, check=True)
    return [line.split(":", 1)[0] for line in out.stdout.splitlines()]


def _dio(device: str) -> str:
    out = subprocess.run(
        ["losetup", "--noheadings", "--list", "-O", "DIO", device],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def _size(device: str) -> int:
    out = subprocess.run(
        ["blockdev", "--getsize64", device], capture_output=True, text=True, check=True
    )
    return int(out.stdout)


def _write_direct(device: str, offset: int, data: bytes) -> None:
    import mmap

    buf = mmap.mmap(-1, len(data))
    buf.write(data)
    fd = os.open(device, os.O_WRONLY | os.O_DIRECT)
    try:
        assert os.pwritev(fd, [buf], offset) == len(data)
        os.fsync(fd)
    finally:
        os.close(fd)
        buf.close()


def test_online_volume_is_a_direct_io_loop_device(loop_simulator: Simulator) -> None:
    edf = Edf(loop_simulator)
    ai = edf.create_ai("loop-ai")["data"]
    device = ai["storage_instances"][0]["access"]["device_path"]
    assert device.startswith("/dev/loop")
    file = loop_simulator.state()["app_instances"][0]["file"]
    assert _loops_of(file) == [device]
    assert _dio(device) == "1"
    assert _size(device) == units.Gi
    assert loop_simulator.state()["loop_devices"] == [device]
    _write_direct(device, 4096, b"\xab" * 4096)
    with open(file, "rb") as f:
        f.seek(4096)
        assert f.read(4096) == b"\xab" * 4096
        assert f.read(4096) == bytes(4096)  # never written: zeros

    edf.call("PUT", f"/app_instances/{ai['id']}", json={"admin_state": "offline", "force": True})
    assert _loops_of(file) == []
    si = edf.call("GET", f"/app_instances/{ai['id']}/storage_instances/storage-1")["data"]
    assert "device_path" not in si["access"] and si["op_state"] == "unavailable"
    assert loop_simulator.state()["loop_devices"] == []

    on = edf.call("PUT", f"/app_instances/{ai['id']}", json={"admin_state": "online"})["data"]
    device2 = on["storage_instances"][0]["access"]["device_path"]
    assert _loops_of(file) == [device2]
    edf.call("DELETE", f"/app_instances/{ai['id']}", json={"force": True})
    assert not Path(file).exists()
    assert loop_simulator.state()["loop_devices"] == []


def test_resize_offline_then_online_shows_new_size(loop_simulator: Simulator) -> None:
    edf = Edf(loop_simulator)
    ai = edf.create_ai("grow-ai")["data"]
    device = ai["storage_instances"][0]["access"]["device_path"]
    _write_direct(device, units.Gi - 4096, b"\x5a" * 4096)
    vol = f"/app_instances/{ai['id']}/storage_instances/storage-1/volumes/volume-1"
    edf.call("PUT", vol, json={"size": 2}, expect=400)
    edf.call("PUT", f"/app_instances/{ai['id']}", json={"admin_state": "offline", "force": True})
    edf.call("PUT", vol, json={"size": 2})
    on = edf.call("PUT", f"/app_instances/{ai['id']}", json={"admin_state": "online"})["data"]
    device = on["storage_instances"][0]["access"]["device_path"]
    assert _size(device) == 2 * units.Gi
    fd = os.open(device, os.O_RDONLY)
    try:
        assert os.pread(fd, 4096, units.Gi - 4096) == b"\x5a" * 4096
        assert os.pread(fd, 4096, units.Gi) == bytes(4096)
    finally:
        os.close(fd)


def test_restart_reattaches_and_cleans_stale_devices(
    simulator_factory: Callable[..., Simulator], tmp_path: Path
) -> None:
    sim = simulator_factory(media="loop", data_dir=tmp_path)
    edf = Edf(sim)
    online = edf.create_ai("stays-online")["data"]
    offline = edf.create_ai("stays-offline")["data"]
    edf.call("PUT", f"/app_instances/{offline['id']}", json={"admin_state": "offline"})
    files = {a["name"]: a["file"] for a in sim.state()["app_instances"]}
    sim.stop()
    assert loop_devices_on(tmp_path) == []  # stop() detached everything it made

    # A crash would leave devices behind: fake one on each volume file.
    stale = [
        subprocess.run(
            ["losetup", "--find", "--show", f], capture_output=True, text=True, check=True
        ).stdout.strip()
        for f in files.values()
    ]
    try:
        again = simulator_factory(media="loop", data_dir=tmp_path)
        state = {a["name"]: a for a in again.state()["app_instances"]}
        device = state["stays-online"]["device_path"]
        assert device and device.startswith("/dev/loop")
        assert _loops_of(files["stays-online"]) == [device]
        assert _loops_of(files["stays-offline"]) == []
        assert state["stays-offline"]["device_path"] is None
        assert again.state()["loop_devices"] == [device]
        si = Edf(again).call("GET", f"/app_instances/{online['id']}")["data"]
        assert si["storage_instances"][0]["access"]["device_path"] == device
    finally:
        for dev in stale:  # normally already detached by the simulator
            subprocess.run(["losetup", "-d", dev], capture_output=True, check=False)


def test_loop_devices_survive_nothing_after_stop(
    simulator_factory: Callable[..., Simulator], tmp_path: Path
) -> None:
    sim = simulator_factory(media="loop", data_dir=tmp_path)
    edf = Edf(sim)
    for i in range(3):
        edf.create_ai(f"many-{i}")
    assert len(loop_devices_on(tmp_path)) == 3
    sim.stop()
    assert loop_devices_on(tmp_path) == []
