"""``./dev demo`` (``python -m demo``) end to end, small, as a child process."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from demo.glance_env import GlanceVenv, process_tree

pytestmark = [pytest.mark.e2e, pytest.mark.root]

#: ``demo`` is the checkout's top-level directory (not in the wheel): run from the checkout.
ROOT = Path(__file__).resolve().parents[2]


def demo(args: list[str], work: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "demo", "--work-dir", str(work), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        cwd=ROOT,
    )


def loop_devices_under(path: Path) -> list[str]:
    out = subprocess.run(["losetup", "-a"], capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if str(path) in line]


def test_demo_uploads_downloads_verifies_and_cleans_up(
    glance_venv: GlanceVenv, tmp_path: Path
) -> None:
    src = tmp_path / "given.raw"
    src.write_bytes(os.urandom(48 * 1024 * 1024 + 17))
    proc = demo(["--file", str(src)], tmp_path / "work")
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    assert "checks            all 10 passed" in out
    assert "copier core       compiled" in out
    assert f"{src.stat().st_size} bytes" in out
    assert "location          datera://127.0.0.1:" in out
    assert "device /dev/loop" in out  # root: loop media
    assert not loop_devices_under(tmp_path)


def test_demo_on_file_media(glance_venv: GlanceVenv, tmp_path: Path) -> None:
    """What a non-root user gets: volumes are sparse files, no loop device."""
    proc = demo(["--media", "file", "--size", "40"], tmp_path / "work")
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    assert "checks            all 10 passed" in out
    assert f"{40 * 1024 * 1024} bytes" in out
    assert re.search(r"device \S+/edf/volumes/\S+\.img", out), out
    assert not loop_devices_under(tmp_path)


def test_demo_stops_everything_on_ctrl_c(glance_venv: GlanceVenv, tmp_path: Path) -> None:
    proc = demo(["--size", "256"], tmp_path / "work")
    assert proc.stdout is not None
    children: list[int] = []
    for line in proc.stdout:
        if "uploading" in line:
            children = process_tree(proc.pid)[1:]  # simulator and uwsgi
            break
    assert len(children) >= 3, children  # simulator, uwsgi master, a worker
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out
    assert "interrupted" in out
    for pid in children:
        assert not Path(f"/proc/{pid}").exists(), f"child {pid} still running"
    assert not loop_devices_under(tmp_path)
