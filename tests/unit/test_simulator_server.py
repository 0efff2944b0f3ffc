"""Simulator: persistence across restarts, TLS, concurrency, logging (file media)."""

from __future__ import annotations

import json
import logging
import os
import ssl
import stat
import statistics
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
import requests
from cryptography import x509
from oslo_utils import units

from datera_glance.simulator import Simulator
from datera_glance.simulator.media import MediaError
from tests.plugins.simulator import Edf


def test_state_survives_restart(
    simulator_factory: Callable[..., Simulator], tmp_path: Path
) -> None:
    sim = simulator_factory(data_dir=tmp_path)
    edf = Edf(sim)
    edf.call("POST", "/tenants", json={"name": "kept_tenant"})
    edf.call("POST", "/initiators", json={"id": "iqn.1993-08.org.debian:01:kept1", "name": "kept"})
    on = edf.create_ai("kept-online", size=2)["data"]
    off = edf.create_ai("kept-offline")["data"]
    edf.call("PUT", f"/app_instances/{off['id']}", json={"admin_state": "offline"})
    edf.call("PUT", f"/app_instances/{on['id']}/metadata", json={"type": "image", "length": 3})
    with open(on["storage_instances"][0]["access"]["device_path"], "r+b") as f:
        f.write(b"persisted")
    before = sim.state()
    old_key = edf.key
    port = sim.port
    sim.stop()

    state_file = tmp_path / "state.json"
    assert stat.S_IMODE(state_file.stat().st_mode) == 0o600
    assert not list(tmp_path.glob("*.tmp"))
    json.loads(state_file.read_text())

    again = simulator_factory(data_dir=tmp_path, port=port)
    after = again.state()
    assert after["app_instances"] == before["app_instances"]
    assert after["initiators"] == before["initiators"]
    assert after["tenants"] == before["tenants"] == ["/root", "/root/kept_tenant"]
    assert after["sessions"] == 0
    # A restart drops sessions: the old key is refused, a new login works.
    r = requests.get(f"{again.url}/v2.2/system", headers={"Auth-Token": old_key or ""}, timeout=10)
    assert r.status_code == 401
    edf2 = Edf(again)
    ai = edf2.call("GET", "/app_instances/kept-online")["data"]
    assert ai["admin_state"] == "online"
    with open(ai["storage_instances"][0]["access"]["device_path"], "rb") as f:
        assert f.read(9) == b"persisted"
    assert edf2.call("GET", f"/app_instances/{ai['id']}/metadata")["data"]["length"] == 3
    off_again = edf2.call("GET", "/app_instances/kept-offline")["data"]
    assert "device_path" not in off_again["storage_instances"][0]["access"]


def test_corrupt_state_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "state.json").write_text('{"format": 99}')
    sim = Simulator(tmp_path)
    with pytest.raises(ValueError, match="format"):
        sim.start()


def test_context_manager_and_url(tmp_path: Path) -> None:
    with Simulator(tmp_path, port=0) as sim:
        assert sim.url == f"http://127.0.0.1:{sim.port}" and sim.port > 0
        assert sim.ca_file is None
        Edf(sim).call("GET", "/system")
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{sim.url}/v2.2/system", timeout=5)


def test_tls_with_generated_certificate(simulator_factory: Callable[..., Simulator]) -> None:
    sim = simulator_factory(tls=True)
    assert sim.url.startswith("https://127.0.0.1:")
    assert sim.ca_file == str(sim.data_dir / "tls" / "cert.pem")
    key_file = sim.data_dir / "tls" / "key.pem"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    cert = x509.load_pem_x509_certificate(Path(sim.ca_file).read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in san.get_values_for_type(x509.DNSName)
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca

    edf = Edf(sim)  # verifies against sim.ca_file
    edf.create_ai("tls-ai")
    r = requests.get(
        f"https://localhost:{sim.port}/v2.2/system",
        headers={"Auth-Token": edf.key or ""},
        verify=sim.ca_file,
        timeout=10,
    )
    assert r.status_code == 200
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{sim.url}/v2.2/system", verify=True, timeout=10)
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{sim.port}/v2.2/system", timeout=10)
    # A client that hangs up mid-handshake does not disturb the server.
    ctx = ssl.create_default_context()
    with pytest.raises(ssl.SSLError):
        import socket

        with (
            socket.create_connection(("127.0.0.1", sim.port), timeout=5) as raw,
            ctx.wrap_socket(raw, server_hostname="127.0.0.1"),
        ):
            pass
    edf.call("GET", "/system")


def test_concurrent_clients(simulator: Simulator) -> None:
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            edf = Edf(simulator)
            for i in range(5):
                ai = edf.create_ai(f"conc-{n}-{i}")["data"]
                edf.call("PUT", f"/app_instances/{ai['id']}/metadata", json={"n": n})
                edf.call("GET", "/app_instances", params={"limit": 3})
                edf.call("PUT", f"/app_instances/{ai['id']}", json={"admin_state": "offline"})
            edf.close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors[0]
    state = simulator.state()
    assert len(state["app_instances"]) == 40
    assert len({a["id"] for a in state["app_instances"]}) == 40
    assert state["capacity"]["used"] == 40 * units.Gi
    assert all(a["admin_state"] == "offline" for a in state["app_instances"])


@pytest.mark.parametrize("tls", [False, True], ids=["http", "https"])
def test_answers_are_not_held_back_by_nagle(
    simulator_factory: Callable[..., Simulator], tls: bool
) -> None:
    """Headers and body are two writes: without TCP_NODELAY the body waited for the client's
    delayed ACK, 40 ms on Linux, on every request (the simulator's whole cost of a GET)."""
    edf = Edf(simulator_factory(tls=tls))
    edf.create_ai("nagle-ai")
    took = []
    for _ in range(15):
        start = time.perf_counter()
        edf.call("GET", "/app_instances/nagle-ai")
        took.append(time.perf_counter() - start)
    assert statistics.median(took) < 0.02, took


def test_request_log_has_no_secrets(simulator: Simulator, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="datera_glance.simulator")
    edf = Edf(simulator)
    edf.create_ai("log-ai")
    ai_path = "/app_instances/log-ai/storage_instances/storage-1/auth"
    edf.call(
        "PUT",
        ai_path,
        json={"type": "chap", "target_user_name": "chapuser", "target_pswd": "TopSecret12345"},
    )
    text = caplog.text
    assert "PUT /v2.2/login -> 200" in text and "POST /v2.2/app_instances -> 200" in text
    for secret in ("password", edf.key or "missing", "TopSecret12345"):
        assert secret not in text
    state_text = json.dumps(simulator.state())
    assert "TopSecret12345" not in state_text


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        Simulator(tmp_path, media="nvme")
    with pytest.raises(ValueError):
        Simulator(tmp_path, api_versions=("2.3",))
    os.makedirs(tmp_path / "x", exist_ok=True)
    busy = Simulator(tmp_path / "x")
    busy.start()
    try:
        with pytest.raises(OSError):
            Simulator(tmp_path / "y", port=busy.port).start()
    finally:
        busy.stop()


class FakeLosetup:
    """Plays ``losetup`` for loop media without root; fails the Nth attach."""

    def __init__(self, fail_attach: int | None = None) -> None:
        self.attached: dict[str, str] = {}  # device -> file
        self.attaches = 0
        self.fail_attach = fail_attach
        self.calls: list[list[str]] = []

    def __call__(self, argv: Sequence[str]) -> str:
        argv = list(argv)
        self.calls.append(argv)
        if argv[1] == "--find":
            self.attaches += 1
            if self.attaches == self.fail_attach:
                raise subprocess.CalledProcessError(1, argv, stderr="no free loop device")
            dev = f"/dev/loop{100 + self.attaches}"
            self.attached[dev] = argv[-1]
            return dev + "\n"
        if argv[1] == "-d":
            self.attached.pop(argv[2])
            return ""
        if argv[1] == "-j":
            return "".join(f"{d}: []: ({f})\n" for d, f in self.attached.items() if f == argv[2])
        raise AssertionError(argv)


def test_loop_media_with_injected_losetup(tmp_path: Path) -> None:
    fake = FakeLosetup()
    with Simulator(tmp_path, media="loop", run=fake) as sim:
        edf = Edf(sim)
        ai = edf.create_ai("fake-loop")["data"]
        assert ai["storage_instances"][0]["access"]["device_path"] == "/dev/loop101"
        assert fake.calls[0][:4] == ["losetup", "--find", "--show", "--direct-io=on"]
        assert sim.state()["loop_devices"] == ["/dev/loop101"]
        edf.call("PUT", f"/app_instances/{ai['id']}", json={"admin_state": "offline"})
        assert fake.attached == {}
        edf.call("PUT", f"/app_instances/{ai['id']}", json={"admin_state": "online"})
        assert list(fake.attached) == ["/dev/loop102"]
        # A device attached behind the simulator's back is cleaned up on the next start.
    fake.attached["/dev/loop7"] = sim.state()["app_instances"][0]["file"]
    with Simulator(tmp_path, media="loop", run=fake) as sim:
        assert list(fake.attached) == ["/dev/loop103"]
        assert sim.state()["loop_devices"] == ["/dev/loop103"]
    assert fake.attached == {}


def test_failed_attach_leaves_nothing(tmp_path: Path) -> None:
    fake = FakeLosetup(fail_attach=2)
    with Simulator(tmp_path, media="loop", run=fake) as sim:
        edf = Edf(sim)
        edf.create_ai("first-ok")
        body = edf.create_ai("second-fails", expect=500)
        assert "no free loop device" in body["message"]
        names = [a["name"] for a in sim.state()["app_instances"]]
        assert names == ["first-ok"]
        assert len(list((tmp_path / "volumes").glob("*.img"))) == 1
    # On restart, a failing re-attach fails start() and detaches what it had attached.
    fake2 = FakeLosetup(fail_attach=1)
    sim2 = Simulator(tmp_path, media="loop", run=fake2)
    with pytest.raises(MediaError):
        sim2.start()
    assert fake2.attached == {}
