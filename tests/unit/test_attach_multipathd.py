"""``check`` with ``datera_use_multipath``: is multipathd running (by its pid file)?"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from datera_glance.attach import connectors


def test_multipathd_running_by_its_pid_file(tmp_path: Path) -> None:
    pid_file = tmp_path / "multipathd.pid"
    missing = connectors.multipathd_running(str(pid_file))
    assert not missing.ok and "no pid" in missing.detail and "start multipathd" in missing.fix
    pid_file.write_text(f"{os.getpid()}\n")
    assert connectors.multipathd_running(str(pid_file)).ok
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout  # fmt: skip
    pid_file.write_text(gone)
    stale = connectors.multipathd_running(str(pid_file))
    assert not stale.ok and "is gone" in stale.detail


def test_the_multipath_strategy_asks_for_it() -> None:
    strategy = connectors.strategy_for("iscsi", True, "sudo true")
    names = [p.name for p in strategy.prerequisites("iqn.2026-12.org.example:host")]
    assert "multipathd running" in names
    single = connectors.strategy_for("iscsi", False, "sudo true")
    assert "multipathd running" not in [p.name for p in single.prerequisites(None)]
