"""``GlanceApi.stop`` returns only once glance-api's whole process group is reaped."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any, cast

from datera_glance import host
from demo.glance_env import GlanceApi

# A master that dies on SIGTERM and a worker that ignores it, in a process group of their own:
# what uwsgi leaves when its master goes and a busy worker does not.
_MASTER = '(trap "" TERM; exec sleep 60) & sleep 60'


def test_stop_waits_until_the_killed_workers_are_reaped(tmp_path: Path) -> None:
    """The worker, orphaned by its master's death, becomes init's child; after the SIGKILL it
    is a zombie until init reaps it (1-2 s measured on a busy host), and a zombie still holds
    its place in the process group and, for a uwsgi worker, the port. A restart that follows
    ``stop`` at once must not find it there."""
    api = GlanceApi(cast(Any, None), tmp_path, port=1)
    proc = subprocess.Popen(["sh", "-c", _MASTER], start_new_session=True)
    cast(Any, api)._proc = proc
    while len(host.group_members(proc.pid)) < 2:  # the worker has started
        time.sleep(0.01)
    api.stop(timeout=2.0)
    assert host.group_members(proc.pid) == []


def test_group_members_sees_a_zombie_until_it_is_reaped() -> None:
    proc = subprocess.Popen(["sh", "-c", "exit 0"], start_new_session=True)
    while (host.stat_fields(proc.pid) or ["?"])[0] != "Z":
        time.sleep(0.01)
    assert host.group_members(proc.pid) == [proc.pid]
    proc.wait()
    assert host.group_members(proc.pid) == []
