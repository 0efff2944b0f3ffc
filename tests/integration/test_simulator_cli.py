"""``datera-glance simulator`` as a subprocess: the ready line, signals, loop cleanup."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests
from oslo_utils import units

from tests.plugins.simulator import loop_devices_on

SIMULATOR = [sys.executable, "-m", "datera_glance.cli", "simulator"]
READY = re.compile(r"^listening on (https?)://127\.0\.0\.1:(\d+)$")


#: The environment variable the CLI reads its password from (never its command line).
PASSWORD_ENV = "DATERA_GLANCE_SIM_PASSWORD"


@contextmanager
def cli(
    data_dir: Path, *extra: str, password: str | None = "sim_pass"
) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """Start the simulator CLI on a free port; yield (process, base URL).

    ``password`` goes in through the environment (``None``: none given)."""
    cmd = [*SIMULATOR, "--port", "0", "--data-dir", str(data_dir), "--user", "sim_user", *extra]
    env = {k: v for k, v in os.environ.items() if k != PASSWORD_ENV}
    if password is not None:
        env[PASSWORD_ENV] = password
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().rstrip("\n")
        m = READY.match(line)
        assert m, (
            f"unexpected first line {line!r}; stderr: {proc.stderr.read() if proc.stderr else ''}"
        )
        yield proc, f"{m.group(1)}://127.0.0.1:{m.group(2)}"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        for stream in (proc.stdout, proc.stderr):
            if stream:
                stream.close()


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """``datera-glance simulator ARGS`` that is expected to exit at once."""
    return subprocess.run([*SIMULATOR, *args], capture_output=True, text=True, timeout=60)


def _login(url: str, password: str = "sim_pass", **kwargs: Any) -> str:
    r = requests.put(
        f"{url}/v2.2/login", json={"name": "sim_user", "password": password}, timeout=10, **kwargs
    )
    assert r.status_code == 200, r.text
    key: str = r.json()["key"]
    return key


def _create(url: str, key: str, name: str, **kwargs: Any) -> dict:
    body = {
        "name": name,
        "storage_instances": [{"name": "storage-1", "volumes": [{"name": "volume-1", "size": 1}]}],
    }
    r = requests.post(
        f"{url}/v2.2/app_instances", json=body, headers={"Auth-Token": key}, timeout=10, **kwargs
    )
    assert r.status_code == 200, r.text
    data: dict = r.json()["data"]
    return data


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_cli_serves_and_stops_cleanly(tmp_path: Path, sig: signal.Signals) -> None:
    with cli(tmp_path, "--capacity", "5GiB", "--sw-version", "3.3.1.0") as (proc, url):
        key = _login(url)
        system = requests.get(f"{url}/v2.2/system", headers={"Auth-Token": key}, timeout=10)
        assert system.json()["data"]["total_capacity"] == 5 * units.Gi
        assert system.json()["data"]["sw_version"] == "3.3.1.0"
        _create(url, key, "cli-ai")
        proc.send_signal(sig)
        assert proc.wait(15) == 0
        assert proc.stderr is not None
        assert "Traceback" not in proc.stderr.read()
    assert (tmp_path / "state.json").exists()


def test_cli_state_survives_sigkill(tmp_path: Path) -> None:
    """Killed without a chance to save: what was answered is in ``state.journal``."""
    with cli(tmp_path) as (proc, url):
        key = _login(url)
        kept = _create(url, key, "killed-kept")
        gone = _create(url, key, "killed-gone")
        r = requests.delete(
            f"{url}/v2.2/app_instances/{gone['id']}",
            json={"force": True},
            headers={"Auth-Token": key},
            timeout=10,
        )
        assert r.status_code == 200, r.text
        proc.kill()
        proc.wait(15)
    with cli(tmp_path) as (proc, url):
        key = _login(url)
        r = requests.get(f"{url}/v2.2/app_instances", headers={"Auth-Token": key}, timeout=10)
        assert [a["id"] for a in r.json()["data"]] == [kept["id"]]
        proc.terminate()
        assert proc.wait(15) == 0


def test_cli_tls(tmp_path: Path) -> None:
    with cli(tmp_path, "--tls") as (proc, url):
        assert url.startswith("https://")
        ca = tmp_path / "tls" / "cert.pem"
        assert ca.exists()
        _login(url, verify=str(ca))
        proc.terminate()
        assert proc.wait(15) == 0


def test_cli_api_versions_and_session_ttl(tmp_path: Path) -> None:
    with cli(tmp_path, "--api-versions", "2.1", "--session-ttl", "60") as (proc, url):
        r = requests.get(f"{url}/api_versions", timeout=10)
        assert r.json() == {"api_versions": ["v2.1"]}
        r = requests.put(
            f"{url}/v2.2/login", json={"name": "sim_user", "password": "sim_pass"}, timeout=10
        )
        assert r.status_code == 404
        proc.terminate()
        assert proc.wait(15) == 0


@pytest.mark.parametrize(
    "bad",
    [
        ["--api-versions", "3.0"],
        ["--capacity", "lots"],
        ["--backend", "nvme"],
        ["--sw-version", "three"],
    ],
    ids=["api-version", "capacity", "backend", "sw-version"],
)
def test_cli_bad_usage_exits_2(tmp_path: Path, bad: list[str]) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "datera_glance.cli", "simulator", "--data-dir", str(tmp_path), *bad],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "listening" not in proc.stdout


def test_cli_media_flag_and_its_old_spelling(tmp_path: Path) -> None:
    """``--media`` says where volumes live; ``--backend`` still works but is not in --help."""
    with cli(tmp_path, "--media", "file") as (proc, url):
        ai = _create(url, _login(url), "cli-media-ai")
        device = ai["storage_instances"][0]["access"]["device_path"]
        assert device.startswith(str(tmp_path / "volumes"))
        proc.terminate()
        assert proc.wait(15) == 0
    usage = run_cli("--help").stdout
    assert "--media" in usage and "--backend" not in usage
    bad = run_cli("--data-dir", str(tmp_path), "--media", "nvme")
    assert bad.returncode == 2 and "listening" not in bad.stdout


def test_cli_port_in_use_is_an_error(tmp_path: Path) -> None:
    with cli(tmp_path / "one") as (proc, url):
        port = url.rsplit(":", 1)[1]
        second = subprocess.run(
            [
                sys.executable,
                "-m",
                "datera_glance.cli",
                "simulator",
                "--port",
                port,
                "--data-dir",
                str(tmp_path / "two"),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode == 1 and "cannot start" in second.stderr
        proc.terminate()
        assert proc.wait(15) == 0


@pytest.mark.root
def test_cli_loop_backend_leaves_no_loop_device(tmp_path: Path) -> None:
    with cli(tmp_path, "--backend", "loop") as (proc, url):
        key = _login(url)
        ai = _create(url, key, "cli-loop-ai")
        device = ai["storage_instances"][0]["access"]["device_path"]
        assert device.startswith("/dev/loop")
        assert loop_devices_on(tmp_path) == [device]
        proc.terminate()
        assert proc.wait(15) == 0
    assert loop_devices_on(tmp_path) == []


@pytest.mark.root
def test_cli_loop_backend_without_root_exits_2(tmp_path: Path) -> None:
    # The CLI's modules are imported as root, then the process becomes nobody and runs it:
    # nobody need not reach this checkout or its .venv (a clone under root's 0700 home).
    os.chmod(tmp_path, 0o777)
    env = {**os.environ, "HOME": str(tmp_path)}
    as_nobody = (
        "import os, sys; import datera_glance.cli as cli; cli.build_parser(); "
        "os.setgroups([]); os.setgid(65534); os.setuid(65534); "
        "sys.exit(cli.main(sys.argv[1:]))"
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            as_nobody,
            "simulator",
            "--backend",
            "loop",
            "--data-dir",
            str(tmp_path / "d"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=tmp_path,
    )
    assert proc.returncode == 2, proc.stderr
    assert "needs root" in proc.stderr
    assert "listening" not in proc.stdout


# ---- the password never on the command line (issue 23: ps showed devstack's) --------------


def _login_status(url: str, password: str) -> int:
    body = {"name": "sim_user", "password": password}
    return requests.put(f"{url}/v2.2/login", json=body, timeout=10).status_code


def test_cli_password_on_the_command_line_is_refused(tmp_path: Path) -> None:
    """Before: accepted, and every local user read it in ``ps``."""
    proc = run_cli("--data-dir", str(tmp_path), "--password", "in-ps")
    assert proc.returncode == 2 and "listening" not in proc.stdout
    assert "--password-file" in proc.stderr and PASSWORD_ENV in proc.stderr
    assert not (tmp_path / "state.json").exists()


def test_cli_password_from_the_environment_is_not_in_its_command_line(tmp_path: Path) -> None:
    with cli(tmp_path / "d", password="env-secret-1") as (proc, url):
        assert _login_status(url, "env-secret-1") == 200
        assert _login_status(url, "password") == 401
        cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes()
        assert b"env-secret-1" not in cmdline
        assert not (tmp_path / "d" / "password").exists()
        proc.terminate()
        assert proc.wait(15) == 0


def test_cli_password_file(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("file-secret-2\n")
    secret.chmod(0o600)
    with cli(tmp_path / "d", "--password-file", str(secret), password=None) as (proc, url):
        assert _login_status(url, "file-secret-2") == 200
        assert _login_status(url, "password") == 401
        proc.terminate()
        assert proc.wait(15) == 0
    missing = run_cli("--data-dir", str(tmp_path / "d"), "--password-file", str(tmp_path / "no"))
    assert missing.returncode == 1 and "--password-file" in missing.stderr


def test_cli_generates_a_password_when_none_is_given(tmp_path: Path) -> None:
    """Before: ``admin``/``password`` (``--password`` defaulted to it)."""
    data_dir = tmp_path / "d"
    with cli(data_dir, password=None) as (proc, url):
        written = data_dir / "password"
        generated = written.read_text().strip()
        assert len(generated) >= 20
        assert re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_\-\.]{2,127}", generated)  # EDF's schema
        assert written.stat().st_mode & 0o777 == 0o600
        assert _login_status(url, generated) == 200
        assert _login_status(url, "password") == 401
        proc.terminate()
        assert proc.wait(15) == 0
        assert proc.stderr is not None
        assert str(written) in proc.stderr.read()
    with cli(data_dir, password=None) as (proc, url):  # the next start keeps it
        assert _login_status(url, generated) == 200
        proc.terminate()
        assert proc.wait(15) == 0


def test_cli_control_token_file(tmp_path: Path) -> None:
    """``/_sim/`` needs the token the CLI writes at every start (0600)."""
    from datera_glance.simulator import SimControl

    with cli(tmp_path / "d") as (proc, url):
        assert requests.get(f"{url}/_sim/state", timeout=10).status_code == 401
        token = tmp_path / "d" / "control-token"
        assert token.stat().st_mode & 0o777 == 0o600
        state = SimControl.for_data_dir(url, tmp_path / "d").state()
        assert state["app_instances"] == []
        proc.terminate()
        assert proc.wait(15) == 0
