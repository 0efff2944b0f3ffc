"""tox.ini: the usual OpenStack environments, each a thin alias of one ``./dev`` command."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TOX = [sys.executable, "-m", "tox"]
ENVS = ("py3", "pep8", "functional", "bench", "genconfig", "docs", "releasenotes")


def _dev_commands() -> set[str]:
    """The subcommands ./dev dispatches (its ``case`` arms)."""
    text = (ROOT / "dev").read_text()
    return set(re.findall(r"^\s+([a-z]+)\) shift; cmd_", text, re.M))


def test_every_environment_runs_one_dev_command(tmp_path: Path) -> None:
    done = subprocess.run(
        [*TOX, "--workdir", str(tmp_path), "config", "-e", ",".join(ENVS), "-k", "commands"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )  # fmt: skip
    commands = dict(re.findall(r"^\[testenv:(\w+)\]\ncommands = (.*)$", done.stdout, re.M))
    assert set(commands) == set(ENVS), done.stdout
    known = _dev_commands()
    for env, command in commands.items():
        program, sub, *_ = command.split()
        assert program == str(ROOT / "dev"), (env, command)
        assert sub in known, (env, command, known)


def test_tox_genconfig_runs_through_dev(tmp_path: Path) -> None:
    """One environment for real: tox -> ./dev -> tools.genconfig (--check: nothing written)."""
    done = subprocess.run(
        [*TOX, "--workdir", str(tmp_path), "run", "-e", "genconfig", "--", "--check"],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "glance-api.conf.sample is up to date" in done.stdout
