"""Fixtures: the ``datera-glance`` console script as a subprocess, on a glance-api.conf.

- ``cli_factory(simulator, **options)``: writes a glance-api.conf for ``simulator`` (multistore
  backend ``fast`` unless ``legacy=True``; ``password=...``, ``tenant=...``, any
  ``datera_*`` option) and returns a ``Cli`` whose ``run(*args)`` runs the installed console
  script with ``--config-file`` added.
- ``cli``: ``cli_factory(simulator)``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.plugins.store import TEST_INITIATOR

SCRIPT = Path(sys.executable).parent / "datera-glance"


def conf_text(
    simulator: Any,
    lock_path: Path,
    *,
    legacy: bool = False,
    backend: str = "fast",
    password: str | None = None,
    **options: Any,
) -> str:
    values: dict[str, Any] = {
        "datera_san_ip": simulator.host,
        "datera_san_port": simulator.port,
        "datera_san_login": "admin",
        "datera_san_password": password or "password",
        "datera_ssl": "false",
        "datera_connector": "local",
        "datera_initiator_name": TEST_INITIATOR,
        "datera_retry_deadline": 2,
    }
    values.update({k if k.startswith("datera_") else f"datera_{k}": v for k, v in options.items()})
    body = "\n".join(f"{k} = {v}" for k, v in values.items())
    locks = f"[oslo_concurrency]\nlock_path = {lock_path}\n"
    if legacy:
        return f"[glance_store]\nstores = datera\ndefault_store = datera\n{body}\n\n{locks}"
    return (
        f"[DEFAULT]\nenabled_backends = {backend}:datera, local:file\n\n"
        f"[glance_store]\ndefault_backend = {backend}\n\n"
        f"[{backend}]\n{body}\n\n"
        f"[local]\nfilesystem_store_datadir = {lock_path.parent / 'images'}\n\n{locks}"
    )


@dataclass(frozen=True)
class Result:
    rc: int
    raw: bytes  # stdout as bytes (``get`` writes image data there)
    err: str

    @property
    def out(self) -> str:
        return self.raw.decode("utf-8", errors="replace")


@dataclass
class Cli:
    """Runs ``datera-glance COMMAND --config-file CONF ARGS...`` (the installed script)."""

    conf: Path

    def run(
        self, *args: str, conf: bool = True, input: bytes | None = None, timeout: float = 120
    ) -> Result:
        command, rest = args[0], list(args[1:])
        extra = ["--config-file", str(self.conf)] if conf else []
        proc = subprocess.run(
            [str(SCRIPT), command, *extra, *rest],
            input=input,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr.decode("utf-8", errors="replace"))

    def json(self, *args: str, expect: int = 0) -> Any:
        result = self.run(*args, "--json")
        assert result.rc == expect, (result.rc, result.out, result.err)
        return json.loads(result.out)

    def ok(self, *args: str, input: bytes | None = None) -> Result:
        result = self.run(*args, input=input)
        assert result.rc == 0, (result.out, result.err)
        return result


@pytest.fixture
def cli_factory(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Cli]:
    def make(simulator: Any, **options: Any) -> Cli:
        root = tmp_path_factory.mktemp("glance-etc")
        locks = root / "locks"
        locks.mkdir(mode=0o700)
        conf = root / "glance-api.conf"
        conf.write_text(conf_text(simulator, locks, **options))
        return Cli(conf)

    return make


@pytest.fixture
def cli(simulator: Any, cli_factory: Callable[..., Cli]) -> Cli:
    return cli_factory(simulator)
