"""``datera-glance bench``: the copier sweep on a scratch file or a named device."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.plugins.cli import SCRIPT


def bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPT), "bench", *args], capture_output=True, text=True, timeout=300, check=False
    )


def test_quick_sweep_json_and_table(tmp_path: Path) -> None:
    result = bench("--quick", "--size", "4MiB", "--dir", str(tmp_path), "--json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["size"] == 4 * 1024 * 1024 and doc["core"] in ("compiled", "python")
    settings = [(r["buffer_size"], r["depth"]) for r in doc["results"]]
    assert settings == [(b << 20, d) for b in (1, 4, 16) for d in (2, 4)]
    assert set(doc["results"][0]) == {
        "buffer_size", "depth", "write_MBps", "read_MBps", "hashed_write_MBps", "score_MBps",
    }  # fmt: skip
    assert (doc["recommended"]["datera_io_buffer_size"], doc["recommended"]["datera_io_depth"]) in (
        settings
    )
    assert list(tmp_path.iterdir()) == []  # the scratch file is gone

    table = bench("--quick", "--size", "4MiB", "--dir", str(tmp_path))
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split()[:3] == ["BUFFER", "DEPTH", "WRITE"]
    assert lines[-2].startswith("recommended: datera_io_buffer_size = ")
    assert lines[-1].strip().startswith("datera_io_depth = ")


def test_device_needs_confirmation_and_room(tmp_path: Path) -> None:
    device = tmp_path / "disk.img"
    device.write_bytes(b"\0" * 4096)
    refused = bench("--device", str(device), "--quick")
    assert refused.returncode == 1
    assert refused.stderr == f"error: bench would overwrite {device} (add --yes-overwrite)\n"
    small = bench("--device", str(device), "--yes-overwrite", "--quick")
    assert small.returncode == 1 and "has 4096 bytes" in small.stderr
    assert bench("--size", "lots").returncode == 2
