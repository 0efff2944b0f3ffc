"""Fixtures and helpers for the real glance-api (the e2e tests): one glance venv, one
PostgreSQL, one EDF simulator per session, one glance-api (2 uwsgi processes x 4 threads, the
datera backend) per module.

The simulator runs in this process on loop devices (root), so tests read the cluster's view
directly (``e2e_cluster.state()``); glance-api reaches it over HTTP like a real cluster.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import random
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from oslo_utils import units

from datera_glance.host import group_members, stat_fields
from datera_glance.simulator import Simulator
from demo.glance_client import GlanceClient
from demo.glance_env import (
    GlanceApi,
    GlanceVenv,
    PostgreSQL,
    constraints_file,
    datera_store_options,
    open_files,
    repo_root,
)
from tests.plugins.simulator import loop_devices_on
from tools.constraints import pinned

LOG = logging.getLogger(__name__)

E2E_INITIATOR = "iqn.2026-11.org.datera-glance:e2e-glance-api"


# ---- test data -------------------------------------------------------------------------


def payload(size: int, seed: int) -> bytes:
    """Deterministic incompressible bytes (no all-zero blocks)."""
    return random.Random(seed).randbytes(size)


def pattern_stream(size: int, seed: int, block: int = 4 * units.Mi) -> Iterator[bytes]:
    """``size`` deterministic bytes, generated block by block (for sizes not kept in memory):
    one random block, each copy stamped with its index so no two blocks are equal."""
    base = payload(block, seed)
    for index, start in enumerate(range(0, size, block)):
        n = min(block, size - start)
        yield (index.to_bytes(8, "little") + base[8:])[:n]


def digests(chunks: Iterable[bytes]) -> tuple[str, str, int]:
    """md5, sha512 and length of a stream, the two hashes on their own threads."""
    md5, sha = hashlib.md5(), hashlib.sha512()
    total = 0
    for chunk in chunks:
        t = threading.Thread(target=md5.update, args=(chunk,))
        t.start()
        sha.update(chunk)
        t.join()
        total += len(chunk)
    return md5.hexdigest(), sha.hexdigest(), total


# ---- the cluster's view ------------------------------------------------------------------


def app_instance(cluster: Simulator, image_id: str) -> dict[str, Any] | None:
    """The simulator's app instance for an image (by uuid), or None."""
    found = [ai for ai in cluster.state()["app_instances"] if ai["uuid"] == image_id]
    assert len(found) <= 1, found
    return found[0] if found else None


def scaled(seconds: float) -> float:
    """A deadline of ``seconds`` on an idle machine, stretched by the load (the 1-minute load
    average per CPU, when above 1): glance-api competes for the CPUs with whatever else runs."""
    load = os.getloadavg()[0] / (os.cpu_count() or 1)
    return seconds * max(1.0, load)


def wait_until(
    predicate: Callable[[], Any],
    timeout: float = 30.0,
    what: str = "condition",
    explain: Callable[[], str] | None = None,
) -> None:
    """Poll ``predicate`` until true; fail after ``scaled(timeout)`` seconds, saying what was
    awaited and (``explain``) what the state is then."""
    limit = scaled(timeout)
    deadline = time.monotonic() + limit
    while not predicate():
        if time.monotonic() > deadline:
            detail = f": {explain()}" if explain else ""
            raise AssertionError(f"timed out after {limit:.0f} s waiting for {what}{detail}")
        time.sleep(0.2)


def devices_in_use(api: GlanceApi, cluster: Simulator) -> dict[int, list[str]]:
    """glance-api processes that hold a cluster device (loop device or volume file) open."""
    devices = set(cluster.state()["loop_devices"])
    devices |= {ai["file"] for ai in cluster.state()["app_instances"] if ai["file"]}
    holders = {}
    for pid, files in open_files(api.pids()).items():
        held = [f for f in files if f in devices]
        if held:
            holders[pid] = held
    return holders


def attach_users(api: GlanceApi, image_id: str) -> list[str]:
    """This host's users of an image's attachment: the Store's reference count, a JSON record
    per image under ``lock_path`` (datera_glance.attach)."""
    users: list[str] = []
    for record in api.lock_dir.glob(f"datera-glance-attach-*-{image_id}.json"):
        users += json.loads(record.read_text()).get("users", [])
    return users


def finished_requests(api: GlanceApi, path: str) -> int:
    """GET requests for ``path`` uwsgi has finished, by its request log: uwsgi logs a request
    after closing its connection, just before it marks the worker idle again
    (``uwsgi_close_request``); the response's close, where the store releases an attachment,
    comes before both."""
    return api.uwsgi_log.read_text(errors="replace").count(f"GET {path} => generated")


# ---- stopping and starting glance-api ----------------------------------------------------
#
# glance-api restarts on its port: the tests' clients keep its URL. uwsgi binds it with
# SO_REUSEADDR, so the TIME_WAIT its own connections leave does not stop it; a socket anyone
# else has on the port does, even a client's in TIME_WAIT. Hence the port is chosen below the
# kernel's ephemeral range (no outgoing connection of this machine is given it while
# glance-api is down), and a restart waits until every process of the old glance-api is gone
# and the port binds, failing with what holds them if that does not happen.


def bindable(port: int) -> bool:
    """Whether uwsgi could bind 127.0.0.1:``port`` now (it sets SO_REUSEADDR too)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def listen_port() -> int:
    """A port on 127.0.0.1 free now and below ``net.ipv4.ip_local_port_range``."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    candidates = list(range(max(1024, low - 16384), low))
    random.shuffle(candidates)
    for port in candidates[:200]:
        if bindable(port):
            return port
    raise RuntimeError(f"no free port on 127.0.0.1 below the ephemeral range (from {low})")


def _describe(pid: int) -> str:
    fields = stat_fields(pid)
    if fields is None:
        return f"{pid} (gone)"
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        cmd = ""
    return f"{pid} (state {fields[0]}, parent {fields[1]}) {cmd[:120]}"


def port_holders(port: int) -> str:
    """The sockets on 127.0.0.1:``port`` (from /proc/net/tcp) and the processes that own them."""
    states = {"01": "ESTABLISHED", "06": "TIME_WAIT", "08": "CLOSE_WAIT", "0A": "LISTEN"}
    sockets: dict[str, str] = {}  # inode -> state
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == port:
            sockets.setdefault(fields[9], states.get(fields[3], f"state {fields[3]}"))
    owners: dict[str, list[str]] = {inode: [] for inode in sockets}
    for entry in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{entry}/fd"):
                with contextlib.suppress(OSError):
                    link = os.readlink(f"/proc/{entry}/fd/{fd}")
                    if link[8:-1] in owners and link.startswith("socket:["):
                        owners[link[8:-1]].append(_describe(int(entry)))
    held = [
        f"{state} held by {', '.join(owners[inode]) or 'no process (the kernel)'}"
        for inode, state in sockets.items()
    ]
    return "; ".join(held) or "no socket (bind fails for another reason)"


def _gone(api: GlanceApi, pgid: int) -> None:
    """Wait until every process of glance-api's group is reaped (a zombie still counts as a
    process to this host: ``kill(pid, 0)`` succeeds on it) and its port binds again."""
    wait_until(
        lambda: not group_members(pgid),
        what=f"the processes of glance-api (group {pgid}) to be reaped",
        explain=lambda: "; ".join(_describe(pid) for pid in group_members(pgid)),
    )
    wait_until(
        lambda: bindable(api.port),
        what=f"glance-api's port {api.port} to be free",
        explain=lambda: port_holders(api.port),
    )


def stopped(api: GlanceApi) -> None:
    """Stop glance-api (SIGTERM: uwsgi stops its workers and their exit hooks run) and wait
    until it is entirely gone."""
    pgid = api.pid
    assert pgid is not None, "glance-api is not running"
    api.stop(timeout=scaled(30))
    _gone(api, pgid)


def crashed(api: GlanceApi) -> None:
    """Kill every process of glance-api at once (SIGKILL: no exit hook runs) and wait until
    they are gone. On a host with a real init (systemd, a container's init) a crashed
    service's orphans are reaped at once; the pid 1 of some sandboxes reaps them only seconds
    later, and a start meanwhile would see them as alive."""
    pgid = api.pid
    assert pgid is not None, "glance-api is not running"
    os.killpg(pgid, signal.SIGKILL)
    api.stop()  # reaps the master, which was ours
    _gone(api, pgid)


def started(api: GlanceApi) -> None:
    """Start glance-api and wait until it answers (its workers have loaded the app)."""
    api.start(timeout=scaled(120))


def restarted(api: GlanceApi) -> None:
    stopped(api)
    started(api)


# ---- fixtures --------------------------------------------------------------------------


def glance_release() -> tuple[int, ...] | None:
    """The glance the e2e venv installs: its pin in the constraints in force (None: newest)."""
    # This checkout (not repo_root(): the matrix imports the package from a release's venv).
    found = constraints_file(Path(__file__).resolve().parents[2])
    if found is None:
        return None
    version = pinned(found.read_text().splitlines()).get("glance")
    return tuple(int(p) for p in version.split(".")) if version else None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``@pytest.mark.glance(33)``: a test of what glance does since 33 is skipped, saying so,
    when the support matrix runs the e2e suite under an older glance."""
    release = glance_release()
    for item in items:
        marker = item.get_closest_marker("glance")
        if marker and release is not None and release < (marker.args[0],):
            wanted = marker.args[0]
            item.add_marker(
                pytest.mark.skip(reason=f"asserts glance >= {wanted}'s answer; this is {release}")
            )


@pytest.fixture(scope="session")
def glance_venv() -> GlanceVenv:
    """glance 33 in its cached venv, with this checkout built into it."""
    return GlanceVenv(repo_root(), log=LOG.warning).ensure()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgreSQL]:
    with PostgreSQL(log=LOG.warning) as pg:
        yield pg


@pytest.fixture(scope="session")
def e2e_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Simulator]:
    """The EDF simulator on loop devices, for the whole session."""
    sim = Simulator(tmp_path_factory.mktemp("e2e-edf"), media="loop")
    sim.start()
    try:
        yield sim
    finally:
        sim.stop()
        left = loop_devices_on(sim.data_dir)
        for dev in left:
            subprocess.run(["losetup", "-d", dev], check=False)
        assert not left, f"loop devices left attached: {left}"


def e2e_glance_api(
    venv: GlanceVenv, postgres: PostgreSQL, base: Path, host: str, port: int, **options: Any
) -> GlanceApi:
    """glance-api (2 processes x 4 threads) with ``enabled_backends = datera1:datera`` on the
    EDF cluster at ``host:port`` (which need not be up); not started."""
    store_options = datera_store_options(
        host,
        port,
        username="admin",
        password="password",
        initiator_name=E2E_INITIATOR,
        # Small volumes and one growth step: a ~1.1 GiB chunked upload must grow once.
        datera_default_image_size=1,
        datera_chunk_size=units.Gi,
        **options,
    )
    return GlanceApi(
        venv,
        base,
        port=listen_port(),
        store_options=store_options,
        database_url=postgres.url,
        processes=2,
        threads=4,
        import_methods=["glance-direct"],
        show_locations=True,
        log=LOG.warning,
    )


@pytest.fixture(scope="module")
def glance_api(
    glance_venv: GlanceVenv,
    postgres: PostgreSQL,
    e2e_cluster: Simulator,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[GlanceApi]:
    """glance-api with ``enabled_backends = datera1:datera`` on the simulator."""
    base: Path = tmp_path_factory.mktemp("e2e-glance")
    with e2e_glance_api(glance_venv, postgres, base, e2e_cluster.host, e2e_cluster.port) as api:
        yield api


@pytest.fixture
def glance(glance_api: GlanceApi) -> GlanceClient:
    return GlanceClient(glance_api.url)


class Images:
    """Images a test creates; deleted (best effort) at teardown."""

    def __init__(self, client: GlanceClient) -> None:
        self.client = client
        self.ids: list[str] = []

    def create(self, name: str, **props: Any) -> str:
        image_id: str = self.client.create_image(name, **props)["id"]
        self.ids.append(image_id)
        return image_id

    def cleanup(self) -> None:
        for image_id in self.ids:
            self.client.delete_image(image_id)


@pytest.fixture
def images(glance: GlanceClient, glance_api: GlanceApi, e2e_cluster: Simulator) -> Iterator[Images]:
    """Image factory. Afterwards no glance-api process may still hold a cluster device, and
    deleting the test's images must leave none of their app instances behind."""
    tracker = Images(glance)
    yield tracker
    wait_until(
        lambda: not devices_in_use(glance_api, e2e_cluster),
        what="glance-api to close every cluster device",
    )
    tracker.cleanup()
    left = [i for i in tracker.ids if app_instance(e2e_cluster, i) is not None]
    assert not left, f"app instances left after deleting images {left}"
