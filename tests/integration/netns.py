"""Run a program module in a network namespace of its own, for dfs-sdk 1.2.27, which only ever
connects to port 7717 (``dfs_sdk.constants.REST_PORT``): there the simulator can listen on it
without meeting any other test or program."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run_isolated(module: str, *args: str, timeout: float = 300) -> dict[str, Any]:
    """``python -m module args...`` under ``unshare --net`` (loopback up); the JSON document
    on its last line of output. Skips the test without root."""
    if os.geteuid() != 0:
        pytest.skip("unshare --net needs root")
    script = f'ip link set lo up && exec "$0" -m {module} "$@"'
    proc = subprocess.run(
        ["unshare", "--net", "sh", "-c", script, sys.executable, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result
