"""Simulator persistence: ``state.json`` plus ``state.journal``, crash-safe without a stop."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from datera_glance.simulator import Simulator
from datera_glance.simulator.model import AppInstance, State, Tenant
from datera_glance.simulator.persistence import StateFiles
from datera_glance.simulator.work import Work
from tests.plugins.simulator import Edf


def _crash_copy(sim: Simulator, to: Path) -> Path:
    """The state files as a crash would leave them: copied while the simulator runs (with the
    volume files, which are named after their volume in any data directory)."""
    to.mkdir(mode=0o700)
    for name in ("state.json", "state.journal"):
        shutil.copy2(sim.data_dir / name, to / name)
    shutil.copytree(sim.data_dir / "volumes", to / "volumes")
    return to


def _moved(state: dict[str, Any], old: Path, new: Path) -> dict[str, Any]:
    """``state`` with its volume files in ``new`` instead of ``old``."""
    moved: dict[str, Any] = json.loads(json.dumps(state).replace(f'"{old}/', f'"{new}/'))
    return moved


def test_every_answered_change_survives_a_crash(
    simulator_factory: Callable[..., Simulator], tmp_path: Path
) -> None:
    sim = simulator_factory()
    edf = Edf(sim)
    edf.call("POST", "/tenants", json={"name": "crash_tenant"})
    edf.call(
        "POST", "/initiators", json={"id": "iqn.1993-08.org.debian:01:crash1", "name": "crash"}
    )
    kept = edf.create_ai("crash-kept")["data"]
    gone = edf.create_ai("crash-gone")["data"]
    edf.call("PUT", f"/app_instances/{kept['id']}/metadata", json={"type": "image"})
    edf.call("PUT", f"/app_instances/{kept['id']}", json={"name": "crash-renamed"})
    edf.call("DELETE", f"/app_instances/{gone['id']}", json={"force": True})
    before = sim.state()
    assert (sim.data_dir / "state.journal").stat().st_size > 0  # not only in a snapshot
    copy = _crash_copy(sim, tmp_path / "crashed")
    # A request that was being written when the power went: its line is torn, never answered.
    with open(copy / "state.journal", "ab") as f:
        f.write(b'{"changes": [{"collection": "app_instances", "key": "')
    again = simulator_factory(data_dir=copy)
    after = again.state()
    assert after["app_instances"] == _moved(before, sim.data_dir, copy)["app_instances"]
    assert Path(after["app_instances"][0]["file"]).parent == copy / "volumes"
    assert [a["name"] for a in after["app_instances"]] == ["crash-renamed"]
    assert after["initiators"] == before["initiators"]
    assert after["tenants"] == ["/root", "/root/crash_tenant"]
    # The start folded the journal into the snapshot; the torn tail is gone.
    assert (copy / "state.journal").read_bytes() == b""
    assert json.loads((copy / "state.json").read_text())["format"] == 1
    edf2 = Edf(again)
    assert edf2.call("GET", "/app_instances/crash-renamed")["data"]["id"] == kept["id"]
    edf2.create_ai("crash-gone")  # its name is free again


def _state_with(*names: str) -> State:
    state = State()
    for n in names:
        state.add_app_instance(
            AppInstance(n, n, "u", "/root", "", "normal", "offline", storage_instances=[])
        )
    return state


def test_journal_is_folded_into_the_snapshot_when_it_outgrows_it(tmp_path: Path) -> None:
    """Past twice the snapshot's size (and the minimum) the journal is folded in: the
    rewrite costs O(state) once per O(state) of changes, flat per request on average."""
    files = StateFiles(tmp_path, Work(), min_journal_bytes=0)
    state = files.load()
    files.compact(state)
    compactions = 0
    for i in range(8):
        state.tenants[f"/root/grow_{i}"] = tenant = Tenant(f"/root/grow_{i}")
        files.save(tenant)
        files.commit()
        files.flush()
        if files.needs_compaction():
            journal = (tmp_path / "state.journal").stat().st_size
            assert journal > 2 * (tmp_path / "state.json").stat().st_size
            files.compact(state)
            compactions += 1
            assert (tmp_path / "state.journal").read_bytes() == b""
    assert 1 <= compactions < 8
    assert len(StateFiles(tmp_path, Work()).load().tenants) == 9


def test_journal_lines_already_in_the_snapshot_are_not_replayed(tmp_path: Path) -> None:
    """A crash after the snapshot's rename but before the journal was emptied: the old lines
    must not resurrect what the snapshot says was deleted."""
    files = StateFiles(tmp_path, Work())
    state = files.load()
    files.compact(state)
    ai = _state_with("ghost-ai").app_instances["ghost-ai"]
    state.add_app_instance(ai)
    files.save(ai)
    files.commit()
    files.flush()
    old_journal = (tmp_path / "state.journal").read_bytes()
    state.remove_app_instance(ai)
    files.save_removal(ai)
    files.commit()
    files.compact(state)
    (tmp_path / "state.journal").write_bytes(old_journal)  # the reset never happened
    assert StateFiles(tmp_path, Work()).load().app_instances == {}


def test_state_indexes_follow_changes() -> None:
    state = _state_with("idx-a", "idx-b")
    a = state.app_instances["idx-a"]
    state.rename_app_instance(a, "idx-c")
    assert state.app_instance("/root", "idx-c") is a
    assert state.app_instance("/root", "idx-a") is a  # by id, which stays
    assert state.named("/root", "idx-a") is None
    assert state.app_instance("/root/other", "idx-a") is None
    state.remove_app_instance(a)
    assert [x.name for x in state.app_instances_of("/root")] == ["idx-b"]
    assert State.from_json(state.to_json()).app_instances_of("/root")[0].name == "idx-b"
