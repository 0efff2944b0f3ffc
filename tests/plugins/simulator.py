"""Fixtures: the EDF simulator, in-process on an ephemeral port.

- ``simulator``: file media, fresh data dir, started; stopped at teardown.
- ``simulator_factory(**kwargs)``: start more (``tls=True``, ``api_versions=("2.1",)``,
  ``sw_version="3.3.0.0"``, ``media="loop"``, ``data_dir=...`` to restart on old state, ...).
- ``loop_simulator``: loop media; the test must be marked ``root``.

At teardown every simulator is stopped and no loop device may be left on its volume files.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from datera_glance.simulator import Simulator


def loop_devices_on(data_dir: Path) -> list[str]:
    """Loop devices backed by any volume file under ``data_dir`` (whoever attached them)."""
    found: list[str] = []
    for file in sorted((data_dir / "volumes").glob("*.img")):
        out = subprocess.run(
            ["losetup", "-j", str(file)], capture_output=True, text=True, check=False
        ).stdout
        found += [line.split(":", 1)[0] for line in out.splitlines() if line.startswith("/dev/")]
    return found


@pytest.fixture
def simulator_factory(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., Simulator]]:
    started: list[Simulator] = []

    def make(**kwargs: Any) -> Simulator:
        data_dir = kwargs.pop("data_dir", None) or tmp_path_factory.mktemp("edfsim")
        sim = Simulator(data_dir, **kwargs)
        sim.start()
        started.append(sim)
        return sim

    yield make

    leaks: list[str] = []
    for sim in reversed(started):
        sim.stop()
        if sim.media_name == "loop":
            left = loop_devices_on(sim.data_dir)
            for dev in left:
                subprocess.run(["losetup", "-d", dev], check=False)
            leaks += left
    assert not leaks, f"simulator left loop devices attached: {leaks}"


@pytest.fixture
def simulator(simulator_factory: Callable[..., Simulator]) -> Simulator:
    """A started file-media simulator (``sim.url``, user ``admin``/``password``)."""
    return simulator_factory()


@pytest.fixture
def loop_simulator(
    request: pytest.FixtureRequest, simulator_factory: Callable[..., Simulator]
) -> Simulator:
    """A started loop-media simulator: ``device_path`` is a real loop device while online."""
    if request.node.get_closest_marker("root") is None:
        pytest.fail("tests using loop_simulator must be marked @pytest.mark.root")
    if os.geteuid() != 0:
        pytest.skip("loop_simulator needs root for losetup")
    return simulator_factory(media="loop")


class Edf:
    """A minimal EDF caller for tests, on plain ``requests`` (not the project's client).

    ``call`` returns the decoded JSON and checks the status; ``key`` is the session key.
    """

    def __init__(
        self,
        sim: Simulator,
        *,
        version: str = "2.2",
        tenant: str | None = None,
        login: bool = True,
        verify: bool | str = True,
    ) -> None:
        import requests

        self.sim = sim
        self.version = version
        self.session = requests.Session()
        # Per request, not session.verify: REQUESTS_CA_BUNDLE in the environment would win
        # over session.verify (a requests quirk).
        self.verify = sim.ca_file if verify is True and sim.ca_file else verify
        if tenant:
            self.session.headers["tenant"] = tenant
        self.key: str | None = None
        if login:
            self.login()

    def url(self, path: str) -> str:
        return f"{self.sim.url}/v{self.version}{path}"

    def login(self, name: str = "admin", password: str = "password") -> str:
        body = self.call("PUT", "/login", json={"name": name, "password": password})
        self.key = body["key"]
        self.session.headers["Auth-Token"] = body["key"]
        return body["key"]

    def call(self, method: str, path: str, *, expect: int = 200, **kwargs: Any) -> Any:
        kwargs.setdefault("verify", self.verify)
        resp = self.session.request(method, self.url(path), timeout=30, **kwargs)
        assert resp.status_code == expect, (
            f"{method} {path}: {resp.status_code} != {expect}: {resp.text[:500]}"
        )
        return resp.json()

    def create_ai(self, name: str, size: float = 1, *, expect: int = 200, **extra: Any) -> Any:
        body = {
            "name": name,
            "create_mode": "openstack",
            "storage_instances": [
                {
                    "name": "storage-1",
                    "volumes": [
                        {
                            "name": "volume-1",
                            "size": size,
                            "replica_count": 3,
                            "placement_mode": "hybrid",
                            "snapshot_policies": [],
                        }
                    ],
                }
            ],
            **extra,
        }
        return self.call("POST", "/app_instances", json=body, expect=expect)

    def close(self) -> None:
        self.session.close()


@pytest.fixture
def edf(simulator: Simulator) -> Iterator[Edf]:
    """A logged-in v2.2 ``Edf`` on the ``simulator`` fixture."""
    client = Edf(simulator)
    yield client
    client.close()
