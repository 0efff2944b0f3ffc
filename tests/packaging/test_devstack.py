"""devstack/plugin.sh against a temporary directory, with devstack's own iniset and iniget.

Devstack cannot run here; its config functions can. ``devstack/ini-config`` is devstack's
``inc/ini-config`` unchanged, ``fake-devstack.sh`` records the calls that would install or start
something. The written ``glance-api.conf`` is then read the way glance-api reads it: oslo.config
plus glance_store's option registration, and the ``datera`` driver loaded through its entry
point, configured against the simulator and used for one upload.
"""

from __future__ import annotations

import io
import os
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from glance_store import multi_backend
from oslo_config import cfg
from stevedore import driver

from datera_glance import cli, options
from datera_glance.simulator import Simulator
from datera_glance.store import Store

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).parent / "devstack"
PASSWORD = "s3cret-devstack-password"

# What devstack's lib/glance writes with GLANCE_ENABLE_MULTIPLE_STORES=True (trimmed).
DEVSTACK_MULTISTORE_CONF = """\
[DEFAULT]
debug = True
enabled_backends = fast:file

[glance_store]
default_backend = fast

[fast]
filesystem_store_datadir = {data}/fast/

[os_glance_staging_store]
filesystem_store_datadir = {data}/os_glance_staging_store/

[os_glance_tasks_store]
filesystem_store_datadir = {data}/os_glance_tasks_store/

[oslo_concurrency]
lock_path = {data}/lock
"""

# ... and with the default GLANCE_ENABLE_MULTIPLE_STORES=False (legacy [glance_store]).
DEVSTACK_LEGACY_CONF = """\
[DEFAULT]
debug = True

[glance_store]
filesystem_store_datadir = {data}/images/

[oslo_concurrency]
lock_path = {data}/lock
"""


@dataclass
class Devstack:
    """A devstack-like environment in ``base``: paths, settings, and the recorded calls."""

    base: Path

    @property
    def conf_dir(self) -> Path:
        return self.base / "etc" / "glance"

    @property
    def api_conf(self) -> Path:
        return self.conf_dir / "glance-api.conf"

    @property
    def calls(self) -> list[str]:
        path = self.base / "calls"
        return path.read_text().splitlines() if path.exists() else []

    def write_conf(self, template: str) -> None:
        self.conf_dir.mkdir(parents=True, exist_ok=True)
        self.api_conf.write_text(template.format(data=self.base / "data"))

    def run(self, script: str, *, phase: str = "", **settings: str) -> subprocess.CompletedProcess:
        """Source devstack's functions, the settings and plugin.sh (with ``phase``), then run
        ``script``, under ``set -o errexit`` as stack.sh does."""
        env = {
            "PATH": os.environ["PATH"],
            "DEST": str(self.base / "opt"),
            "DATA_DIR": str(self.base / "data"),
            "STACK_USER": "stack",
            "GLANCE_CONF_DIR": str(self.conf_dir),
            "GLANCE_API_CONF": str(self.api_conf),
            "GLANCE_BIN_DIR": str(self.base / "venv" / "bin"),
            "ENABLED_SERVICES": "key,g-api",
            "DEVSTACK_CALLS": str(self.base / "calls"),
            "DATERA_GLANCE_DIR": str(ROOT),
            "DATERA_GLANCE_SUDOERS_DIR": str(self.base / "sudoers.d"),
            "DATERA_SAN_PASSWORD": PASSWORD,
            **settings,
        }
        text = f"""
set -o errexit
source {HERE / "fake-devstack.sh"}
source {HERE / "ini-config"}
source {ROOT / "devstack" / "settings"}
source {ROOT / "devstack" / "plugin.sh"} {phase}
{script}
"""
        return subprocess.run(
            ["bash", "-c", text], env=env, capture_output=True, text=True, check=False
        )

    def configure(self, **settings: str) -> None:
        script = (
            'datera_glance_enable_backend "$GLANCE_API_CONF" "$DATERA_GLANCE_BACKEND"\n'
            'datera_glance_write_backend "$GLANCE_API_CONF" "$DATERA_GLANCE_BACKEND"'
        )
        done = self.run(script, **settings)
        assert done.returncode == 0, done.stderr

    def load(self) -> cfg.ConfigOpts:
        """glance-api.conf as glance-api reads it: its options, glance_store's per backend."""
        conf = cfg.ConfigOpts()
        conf.register_opt(cfg.DictOpt("enabled_backends"))
        conf(["--config-file", str(self.api_conf)], default_config_files=[])
        # glance-api registers its reserved stores too (glance/common/config.py).
        reserved = {"os_glance_staging_store": "file", "os_glance_tasks_store": "file"}
        multi_backend.register_store_opts(conf, reserved_stores=reserved)
        return conf


@pytest.fixture
def devstack(tmp_path: Path) -> Devstack:
    return Devstack(tmp_path)


def test_multistore_gets_the_datera_backend_next_to_devstacks(devstack: Devstack) -> None:
    devstack.write_conf(DEVSTACK_MULTISTORE_CONF)
    devstack.configure(DATERA_GLANCE_SIMULATOR="False", DATERA_SAN_IP="172.28.94.11")
    conf = devstack.load()
    assert conf.enabled_backends == {"fast": "file", "datera": "datera"}
    assert conf.glance_store.default_backend == "datera"
    group = conf.datera
    assert (group.datera_san_ip, group.datera_san_port) == ("172.28.94.11", 7718)
    assert (group.datera_san_login, group.datera_san_password) == ("admin", PASSWORD)
    assert group.datera_connector == "iscsi"
    assert group.datera_replica_count == options.DEFAULT_REPLICA_COUNT
    assert group.datera_rootwrap_config == str(devstack.conf_dir / "rootwrap.conf")
    assert conf.fast.filesystem_store_datadir.endswith("/fast/")  # devstack's own untouched


def test_legacy_devstack_conf_becomes_multistore(devstack: Devstack) -> None:
    devstack.write_conf(DEVSTACK_LEGACY_CONF)
    devstack.configure(DATERA_GLANCE_DEFAULT_BACKEND="False")
    conf = devstack.load()
    assert conf.enabled_backends == {"datera": "datera"}
    # Not asked to be the default, but the only backend: glance needs a default backend.
    assert conf.glance_store.default_backend == "datera"
    for store in ("os_glance_staging_store", "os_glance_tasks_store"):
        datadir = getattr(conf, store).filesystem_store_datadir
        assert datadir == f"{devstack.base}/data/glance/{store}/"


def test_configuring_twice_changes_nothing(devstack: Devstack) -> None:
    devstack.write_conf(DEVSTACK_MULTISTORE_CONF)
    devstack.configure()
    first = devstack.api_conf.read_text()
    devstack.configure()
    assert devstack.api_conf.read_text() == first
    assert first.count("datera:datera") == 1


def test_real_cluster_without_address_stops_stack(devstack: Devstack) -> None:
    devstack.write_conf(DEVSTACK_MULTISTORE_CONF)
    done = devstack.run(
        'datera_glance_write_backend "$GLANCE_API_CONF" datera', DATERA_GLANCE_SIMULATOR="False"
    )
    assert done.returncode == 1
    assert "DATERA_SAN_IP is not set" in done.stderr


def test_password_never_reaches_the_trace(devstack: Devstack) -> None:
    """stack.sh runs with xtrace on and logs it; the plugin keeps the password out."""
    devstack.write_conf(DEVSTACK_MULTISTORE_CONF)
    script = (
        "set -o xtrace\n"
        'datera_glance_write_backend "$GLANCE_API_CONF" datera\n'
        "start_datera_glance_simulator\n"
    )
    done = devstack.run(script)
    assert done.returncode == 0, done.stderr
    assert "+ datera_glance_write_backend " in done.stderr  # the trace is on
    assert "+ start_datera_glance_simulator" in done.stderr
    assert PASSWORD not in done.stderr + done.stdout
    assert PASSWORD in devstack.api_conf.read_text()


@pytest.mark.root
def test_rootwrap_filters_and_sudoers(devstack: Devstack) -> None:
    devstack.write_conf(DEVSTACK_MULTISTORE_CONF)
    done = devstack.run('datera_glance_install_rootwrap "$GLANCE_CONF_DIR"')
    assert done.returncode == 0, done.stderr
    filters = devstack.conf_dir / "rootwrap.d" / "datera-glance.filters"
    assert filters.read_text() == (ROOT / "etc/glance/rootwrap.d/images.filters").read_text()
    assert filters.stat().st_mode & 0o777 == 0o644 and filters.stat().st_uid == 0
    rootwrap = (devstack.conf_dir / "rootwrap.conf").read_text()
    assert f"filters_path={devstack.conf_dir}/rootwrap.d\n" in rootwrap
    sudoers = devstack.base / "sudoers.d" / "datera-glance-rootwrap"
    assert sudoers.stat().st_mode & 0o777 == 0o440
    assert sudoers.read_text() == (
        f"stack ALL=(root) NOPASSWD: {devstack.base}/venv/bin/glance-rootwrap "
        f"{devstack.conf_dir}/rootwrap.conf *\n"
    )


def test_existing_rootwrap_conf_is_kept(devstack: Devstack) -> None:
    devstack.write_conf(DEVSTACK_MULTISTORE_CONF)
    (devstack.conf_dir / "rootwrap.conf").write_text("[DEFAULT]\nfilters_path=/x\n")
    done = devstack.run('datera_glance_install_rootwrap "$GLANCE_CONF_DIR"')
    assert done.returncode == 0, done.stderr
    assert (devstack.conf_dir / "rootwrap.conf").read_text() == "[DEFAULT]\nfilters_path=/x\n"


def test_phases(devstack: Devstack) -> None:
    devstack.write_conf(DEVSTACK_MULTISTORE_CONF)
    assert devstack.run("", phase="stack install").returncode == 0
    assert devstack.calls == [f"pip_install {ROOT}"]
    devstack.run("", phase="stack install", DATERA_GLANCE_SIMULATOR="False")
    assert devstack.calls[-1] == "install_package open-iscsi"
    done = devstack.run("", phase="stack post-config")
    assert done.returncode == 0, done.stderr
    [start] = devstack.calls[-1:]
    assert start.startswith(f"run_process datera-glance-sim {devstack.base}/venv/bin/datera-glance")
    assert " simulator --host 127.0.0.1 --port 7717 --media loop " in start
    assert start.endswith(" root")
    # The flags are the installed command's: its own parser accepts them.
    args = cli.build_parser().parse_args(start.split()[3:-1])
    assert (args.command, args.port, args.media) == ("simulator", 7717, "loop")
    assert "datera:datera" in devstack.api_conf.read_text()
    devstack.run("", phase="unstack")
    assert devstack.calls[-1] == "stop_process datera-glance-sim"


def test_simulator_password_is_in_a_root_only_file_not_on_its_command_line(
    devstack: Devstack,
) -> None:
    """Before: ``--password $DATERA_SAN_PASSWORD`` on the command line of a long-running root
    process, which ``ps`` shows every local user."""
    devstack.write_conf(DEVSTACK_MULTISTORE_CONF)
    done = devstack.run("start_datera_glance_simulator")
    assert done.returncode == 0, done.stderr
    [start] = devstack.calls
    assert PASSWORD not in start
    args = cli.build_parser().parse_args(start.split()[3:-1])
    data_dir = Path(args.data_dir)
    assert data_dir == devstack.base / "data" / "datera-glance-sim"
    assert (data_dir.stat().st_uid, data_dir.stat().st_mode & 0o777) == (os.geteuid(), 0o700)
    password_file = Path(args.password_file)
    assert password_file.parent == data_dir
    assert password_file.read_text() == PASSWORD + "\n"
    assert password_file.stat().st_mode & 0o777 == 0o600
    # A second stack (DATERA_SAN_PASSWORD changed in local.conf) rewrites it.
    done = devstack.run("start_datera_glance_simulator", DATERA_SAN_PASSWORD="changed")
    assert done.returncode == 0, done.stderr
    assert password_file.read_text() == "changed\n"
    assert password_file.stat().st_mode & 0o777 == 0o600


def test_glance_store_loads_and_uses_the_written_backend(
    devstack: Devstack, simulator: Simulator
) -> None:
    """The simulator-mode section, as written, configures the real driver against a cluster."""
    devstack.write_conf(DEVSTACK_MULTISTORE_CONF)
    devstack.configure(
        DATERA_GLANCE_SIM_PORT=str(simulator.port),
        DATERA_SAN_LOGIN="admin",
        DATERA_SAN_PASSWORD="password",
    )
    conf = devstack.load()
    store: Any = driver.DriverManager(
        "glance_store.drivers",
        conf.enabled_backends["datera"],
        invoke_on_load=True,
        invoke_args=(conf,),
        invoke_kwds={"backend": "datera"},
    ).driver
    assert isinstance(store, Store)
    store.configure(re_raise_bsc=True)
    try:
        image_id = str(uuid.uuid4())
        data = os.urandom(1024 * 1024 + 3)
        uri, size, _md5, _multihash, _meta = store.add(
            image_id, io.BytesIO(data), len(data), "sha256"
        )
        assert size == len(data)
        assert uri == f"datera://127.0.0.1:{simulator.port}/app_instances/{image_id}"
        [ai] = simulator.state()["app_instances"]
        assert ai["uuid"] == image_id
    finally:
        store.close()
