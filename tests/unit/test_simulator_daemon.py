"""The simulator as a daemon: devstack runs it as root, so its data directory, its secrets,
its volume files and its ``/_sim/`` controls must not let a local user read, write or delete
what is not theirs (issue 23, section 3).

Each test reproduces an attack of the review; the table is in the simulator README
("Running it as a daemon").
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
from oslo_utils import units

from datera_glance.simulator import Simulator
from tests.plugins.simulator import Edf

VOL = "/storage_instances/storage-1/volumes/volume-1"
NOBODY = 65534


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def _refused(data_dir: Path, match: str) -> None:
    """Starting on ``data_dir`` fails with ``match`` and writes nothing there."""
    before = sorted(data_dir.rglob("*"))
    sim = Simulator(data_dir)
    try:
        with pytest.raises(ValueError, match=match):
            sim.start()
    finally:
        sim.stop()
    assert sorted(data_dir.rglob("*")) == before


# ---- the data directory ----------------------------------------------------------------


def test_new_data_dir_is_private(
    simulator_factory: Callable[..., Simulator], tmp_path: Path
) -> None:
    data_dir = tmp_path / "new" / "edf"
    simulator_factory(data_dir=data_dir)
    assert _mode(data_dir) == 0o700


@pytest.mark.parametrize("mode", [0o777, 0o770, 0o1777], ids=["0777", "0770", "1777"])
def test_data_dir_others_can_write_is_refused(tmp_path: Path, mode: int) -> None:
    """Whoever can write the directory can plant symlinks or edit state.json for root."""
    data_dir = tmp_path / "edf"
    data_dir.mkdir()
    data_dir.chmod(mode)
    _refused(data_dir, "can be written by group or others")


@pytest.mark.root
def test_data_dir_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("chown to another user needs root")
    data_dir = tmp_path / "edf"
    data_dir.mkdir(mode=0o700)
    os.chown(data_dir, NOBODY, NOBODY)
    _refused(data_dir, f"owned by uid {NOBODY}")


@pytest.mark.root
def test_subdirectory_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    """A data directory handed over to root keeps what its old owner left inside."""
    if os.geteuid() != 0:
        pytest.skip("chown to another user needs root")
    data_dir = tmp_path / "edf"
    (data_dir / "volumes").mkdir(parents=True, mode=0o700)
    data_dir.chmod(0o700)
    os.chown(data_dir / "volumes", NOBODY, NOBODY)
    _refused(data_dir, f"owned by uid {NOBODY}")


def test_state_file_that_is_a_symlink_is_refused(tmp_path: Path) -> None:
    data_dir = tmp_path / "edf"
    data_dir.mkdir(mode=0o700)
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    (data_dir / "state.journal").symlink_to(victim)
    _refused(data_dir, "state.journal is a symbolic link")
    assert victim.read_text() == "precious\n"


def test_data_dir_under_a_world_writable_parent_is_refused(tmp_path: Path) -> None:
    """A parent anyone may write (without the sticky bit): anyone can swap the directory."""
    parent = tmp_path / "open"
    parent.mkdir()
    parent.chmod(0o777)
    (parent / "edf").mkdir(mode=0o700)
    _refused(parent / "edf", "can be written by others")


# ---- secrets: the TLS key ----------------------------------------------------------------


def test_tls_key_never_follows_a_planted_symlink(
    simulator_factory: Callable[..., Simulator], tmp_path: Path
) -> None:
    """Before: root wrote the private key into the symlink's target, mode 0644."""
    victims = {name: tmp_path / f"victim-{name}" for name in ("key.pem", "cert.pem")}
    data_dir = tmp_path / "edf"
    (data_dir / "tls").mkdir(parents=True, mode=0o700)
    data_dir.chmod(0o700)
    for name, victim in victims.items():
        victim.write_text("precious\n")
        victim.chmod(0o644)
        (data_dir / "tls" / name).symlink_to(victim)
    sim = simulator_factory(data_dir=data_dir, tls=True)
    for victim in victims.values():
        assert victim.read_text() == "precious\n"
        assert _mode(victim) == 0o644
    key = data_dir / "tls" / "key.pem"
    assert not key.is_symlink() and _mode(key) == 0o600
    assert b"PRIVATE KEY" in key.read_bytes()
    Edf(sim).call("GET", "/system")  # the new certificate serves


def test_tls_key_left_readable_becomes_private(
    simulator_factory: Callable[..., Simulator], tmp_path: Path
) -> None:
    """Before: an existing key.pem kept its mode (0644) when the new key was written in."""
    data_dir = tmp_path / "edf"
    (data_dir / "tls").mkdir(parents=True, mode=0o700)
    data_dir.chmod(0o700)
    old = data_dir / "tls" / "key.pem"
    old.write_text("old key\n")
    old.chmod(0o644)
    simulator_factory(data_dir=data_dir, tls=True)
    assert _mode(old) == 0o600 and b"PRIVATE KEY" in old.read_bytes()
    assert _mode(data_dir / "tls") == 0o700


# ---- volume files ------------------------------------------------------------------------


def _set_files(obj: Any, value: str) -> int:
    """Set every ``file`` in a JSON state to ``value``; return how many."""
    count = 0
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k == "file":
                obj[k] = value
                count += 1
            else:
                count += _set_files(v, value)
    elif isinstance(obj, list):
        count += sum(_set_files(v, value) for v in obj)
    return count


def test_volume_paths_come_only_from_the_volumes_directory(
    simulator_factory: Callable[..., Simulator], tmp_path: Path
) -> None:
    """Before: a ``file`` edited into state.json was unlinked by root on DELETE."""
    data_dir = tmp_path / "edf"
    sim = simulator_factory(data_dir=data_dir)
    edf = Edf(sim)
    ai = edf.create_ai("victim-ai")["data"]
    edf.call("POST", f"/app_instances/{ai['id']}{VOL}/snapshots", json={})
    sim.stop()
    outside = tmp_path / "outside.txt"
    outside.write_text("keep me\n")
    state = json.loads((data_dir / "state.json").read_text())
    assert _set_files(state, str(outside)) == 2  # the volume's and the snapshot's
    (data_dir / "state.json").write_text(json.dumps(state))

    sim = simulator_factory(data_dir=data_dir)
    edf = Edf(sim)
    [listed] = sim.state()["app_instances"]
    snaps = edf.call("GET", f"/app_instances/{ai['id']}{VOL}/snapshots")["data"]
    edf.call("DELETE", f"/app_instances/{ai['id']}{VOL}/snapshots/{snaps[0]['utc_ts']}")
    edf.call("DELETE", f"/app_instances/{ai['id']}", json={"force": True})
    assert outside.read_text() == "keep me\n"
    assert Path(listed["file"]).parent == data_dir / "volumes"
    assert list((data_dir / "volumes").iterdir()) == []


def test_volume_uuid_that_is_a_path_is_refused(
    simulator_factory: Callable[..., Simulator], tmp_path: Path
) -> None:
    """File names are made of the volume's uuid: only a real UUID makes one."""
    data_dir = tmp_path / "edf"
    sim = simulator_factory(data_dir=data_dir)
    Edf(sim).create_ai("victim-ai")
    sim.stop()
    text = (data_dir / "state.json").read_text()
    [vol_uuid] = json.loads(text)["app_instances"][0]["storage_instances"][0]["volumes"]
    (data_dir / "state.json").write_text(text.replace(vol_uuid["uuid"], "../../../etc/passwd"))
    _refused(data_dir, "is not a UUID")


def test_volume_snapshot_and_clone_files_are_private(
    simulator_factory: Callable[..., Simulator], tmp_path: Path
) -> None:
    """Before: 0644, so any local user read an uploaded image."""
    data_dir = tmp_path / "edf"
    sim = simulator_factory(data_dir=data_dir)
    edf = Edf(sim)
    ai = edf.create_ai("private")["data"]
    edf.call("PUT", f"/app_instances/{ai['id']}", json={"admin_state": "offline"})
    edf.call("POST", f"/app_instances/{ai['id']}{VOL}/snapshots", json={})
    edf.call("PUT", f"/app_instances/{ai['id']}{VOL}", json={"size": 2})
    src = {"path": f"/app_instances/{ai['id']}{VOL}"}
    edf.call(
        "POST",
        "/app_instances",
        json={"name": "clone", "create_mode": "openstack", "clone_volume_src": src},
    )
    files = sorted((data_dir / "volumes").iterdir())
    assert [f.suffix for f in files].count(".img") == 2 and len(files) == 3
    assert {f: _mode(f) for f in files} == {f: 0o600 for f in files}
    assert _mode(data_dir / "volumes") == 0o700
    assert _mode(data_dir / "state.json") == 0o600


def test_volume_files_left_readable_become_private_at_start(
    simulator_factory: Callable[..., Simulator], tmp_path: Path
) -> None:
    """A data directory from an older simulator: its 0644 files are made 0600."""
    data_dir = tmp_path / "edf"
    sim = simulator_factory(data_dir=data_dir)
    Edf(sim).create_ai("old")
    sim.stop()
    [file] = (data_dir / "volumes").iterdir()
    file.chmod(0o644)
    (data_dir / "volumes").chmod(0o755)
    simulator_factory(data_dir=data_dir)
    assert _mode(file) == 0o600


# ---- /_sim/ controls ---------------------------------------------------------------------

CONTROLS: list[tuple[str, str, Any]] = [
    ("GET", "/_sim/state", None),
    ("PUT", "/_sim/capacity", {"bytes": 0}),
    ("POST", "/_sim/faults", {"method": None, "path": ".*", "drop": True, "count": None}),
    ("DELETE", "/_sim/faults", None),
    ("POST", "/_sim/sessions/expire", None),
    ("POST", "/_sim/app_instances", {"count": 1}),
]


@pytest.mark.parametrize(("method", "path", "body"), CONTROLS)
def test_sim_controls_without_credentials_are_401(
    simulator: Simulator, method: str, path: str, body: Any
) -> None:
    """Before: a local user read the state, set capacity 0 and dropped every request."""
    edf = Edf(simulator)
    for headers in ({}, {"Sim-Token": "guess"}, {"Auth-Token": "guess"}):
        r = requests.request(method, simulator.url + path, json=body, headers=headers, timeout=10)
        assert r.status_code == 401, (headers, r.text)
        assert "Sim-Token" in r.json()["message"]
    state = simulator.state()
    assert state["faults"] == [] and state["app_instances"] == []
    assert state["capacity"]["total"] == 100 * units.Gi
    assert state["sessions"] == 1
    edf.call("GET", "/system")


def test_sim_controls_with_the_token_or_a_session(simulator: Simulator) -> None:
    url = f"{simulator.url}/_sim/capacity"
    token = {"Sim-Token": simulator.control_token}
    r = requests.put(url, json={"bytes": units.Gi}, headers=token, timeout=10)
    assert r.status_code == 200 and r.json()["total"] == units.Gi
    key = Edf(simulator).key
    assert key
    r = requests.put(url, json={"bytes": 2 * units.Gi}, headers={"Auth-Token": key}, timeout=10)
    assert r.status_code == 200 and r.json()["total"] == 2 * units.Gi
    token_file = simulator.data_dir / "control-token"
    assert token_file.read_text().strip() == simulator.control_token
    assert _mode(token_file) == 0o600


def test_sim_control_client(simulator: Simulator) -> None:
    """``SimControl``: the ``/_sim/`` client other processes (and e2e tests) use."""
    from datera_glance.simulator import SimControl, SimControlError

    control = SimControl.for_data_dir(simulator.url, simulator.data_dir)
    control.add_fault("GET", "^/system$", status=503, count=1)
    edf = Edf(simulator)
    edf.call("GET", "/system", expect=503)
    edf.call("GET", "/system")
    control.set_capacity(5 * units.Gi)
    assert control.state()["capacity"]["total"] == 5 * units.Gi
    assert control.seed_app_instances(2, prefix="c-") == [
        a["id"] for a in simulator.state()["app_instances"]
    ]
    control.add_fault(None, "/app_instances", drop=True, count=None)
    assert len(control.state()["faults"]) == 1
    control.clear_faults()
    control.expire_sessions()
    edf.call("GET", "/system", expect=401)
    with pytest.raises(SimControlError, match="400"):
        control.add_fault("GET", "(", status=500)
    with pytest.raises(SimControlError, match="401"):
        SimControl(simulator.url, "wrong").state()
    assert simulator.control().state()["capacity"]["total"] == 5 * units.Gi
