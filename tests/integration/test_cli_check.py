"""``datera-glance check`` and the conventions every command follows, through the console script.

Configuration is read as glance-api reads it: glance's ``enabled_backends`` (glance/common/
config.py) and glance_store's ``register_store_opts`` (glance_store/multi_backend.py) for
multistore, ``[glance_store]`` for the legacy layout (glance_store/backend.py).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from datera_glance import host
from datera_glance.simulator import Simulator
from tests.plugins.cli import SCRIPT, Cli

SECRET = "Sup3r-S3cret-pw"
SESSION_KEY = re.compile(r"\b[0-9a-f]{32}\b")  # the simulator's keys: secrets.token_hex(16)
COMMANDS = ("check", "ls", "show", "put", "get", "rm", "verify", "gc", "bench", "simulator")


def statuses(doc: dict[str, Any]) -> dict[str, str]:
    return {c["name"]: c["status"] for c in doc["checks"]}


def test_check_ok_table_and_json(simulator: Simulator, cli: Cli) -> None:
    table = cli.ok("check")
    lines = table.out.splitlines()
    assert lines[0].split() == ["CHECK", "STATUS", "DETAIL", "FIX"]
    assert any(re.match(r"cluster\s+ok\s+.*product 3\.2\.5\.0, API 2\.2", ln) for ln in lines)
    doc = cli.json("check")
    assert doc["ok"] is True
    assert statuses(doc) == {
        "options": "ok",
        "transport": "warning",  # the test simulator speaks plain HTTP
        "cluster": "ok",
        "product": "ok",
        "tenant": "ok",
        "capacity": "ok",
        "image tags": "ok",
        "connector": "ok",
        "lock_path": "ok",
        "huge pages": "ok" if host.thp_mode() in ("always", "madvise") else "warning",
        "O_DIRECT": "skipped",
    }
    assert set(doc["checks"][0]) == {"name", "status", "detail", "fix"}


def test_check_warns_when_credentials_travel_in_clear(
    simulator_factory: Callable[..., Simulator], cli_factory: Callable[..., Cli]
) -> None:
    """Before: with plain HTTP ``check`` said ok on every line. Now a ``transport`` warning
    names the options; over verified HTTPS the line is ok and names the CA bundle."""
    plain = cli_factory(simulator_factory())
    line = next(c for c in plain.json("check")["checks"] if c["name"] == "transport")
    assert line["status"] == "warning" and "clear text" in line["detail"]
    assert "datera_san_port" in line["fix"]
    tls = simulator_factory(tls=True)
    secure = cli_factory(tls, ssl="true", ssl_ca_file=tls.ca_file)
    doc = secure.json("check")
    line = next(c for c in doc["checks"] if c["name"] == "transport")
    assert line == {
        "name": "transport",
        "status": "ok",
        "detail": f"HTTPS, certificate verified against {tls.ca_file}",
        "fix": "",
    }
    assert statuses(doc)["cluster"] == "ok"


@pytest.mark.parametrize(
    ("sw_version", "status", "verdict"),
    [
        ("2.1.4.0", "ok", "supported"),
        ("2.2.7.1", "ok", "supported"),
        ("3.3.0.0", "ok", "tested, not in the version table"),
        ("4.0.1.0", "warning", "unknown to this driver"),
    ],
)
def test_check_says_whether_the_product_version_is_supported(
    simulator_factory: Callable[..., Simulator],
    cli_factory: Callable[..., Cli],
    sw_version: str,
    status: str,
    verdict: str,
) -> None:
    """The driver's version table names 2.1.x and 2.2.x; others are a note, never a refusal."""
    cli = cli_factory(simulator_factory(sw_version=sw_version))
    doc = cli.json("check")
    row = next(c for c in doc["checks"] if c["name"] == "product")
    assert (row["status"], row["detail"]) == (status, f"{sw_version}: {verdict}")
    assert doc["ok"] is True


def test_check_write_test_leaves_nothing(simulator: Simulator, cli: Cli) -> None:
    doc = cli.json("check", "--write-test")
    assert doc["ok"] is True, doc
    assert statuses(doc)["write test"] == "ok"
    assert statuses(doc)["O_DIRECT"] == "ok"
    assert simulator.state()["app_instances"] == []


def test_check_legacy_glance_store_section(
    simulator: Simulator, cli_factory: Callable[..., Cli]
) -> None:
    cli = cli_factory(simulator, legacy=True)
    doc = cli.json("check")
    assert doc["ok"] is True
    assert doc["checks"][0]["detail"] == "backend [glance_store]"


def test_check_creates_the_tenant(simulator: Simulator, cli_factory: Callable[..., Cli]) -> None:
    cli = cli_factory(simulator, tenant_id="/root/glance_images")
    assert statuses(cli.json("check"))["tenant"] == "ok"
    assert cli.json("ls")["tenant"] == "/root/glance_images"


def test_wrong_password_is_one_line_exit_1(
    simulator: Simulator, cli_factory: Callable[..., Cli]
) -> None:
    cli = cli_factory(simulator, password="not-the-password")
    result = cli.run("check")
    assert result.rc == 1
    assert re.search(
        r"cluster\s+error\s+.*401.*check datera_san_login and datera_san_password", result.out
    )
    assert "Traceback" not in result.err
    for command in ("ls", "verify --all", "gc"):
        other = cli.run(*command.split())
        assert other.rc == 1
        assert other.err.count("\n") == 1 and other.err.startswith("error: Datera EDF:"), other.err
        assert "datera_san_password" in other.err


def test_stopped_cluster(
    simulator_factory: Callable[..., Simulator], cli_factory: Callable[..., Cli]
) -> None:
    sim = simulator_factory()
    cli = cli_factory(sim)
    sim.stop()
    result = cli.run("check")
    assert result.rc == 1
    assert re.search(r"cluster\s+error\s+.*check datera_san_ip, datera_san_port", result.out)
    ls = cli.run("ls")
    assert ls.rc == 1 and ls.err.count("\n") == 1 and "Traceback" not in ls.err


def test_traceback_only_with_verbose(simulator: Simulator, cli_factory: Callable[..., Cli]) -> None:
    cli = cli_factory(simulator, password="not-the-password")
    assert "Traceback" not in cli.run("ls").err
    assert "Traceback" in cli.run("ls", "-v").err


def test_bad_option_value(simulator: Simulator, cli_factory: Callable[..., Cli]) -> None:
    cli = cli_factory(simulator, initiator_name="not-an-iqn")
    doc = cli.json("check", expect=1)
    assert statuses(doc) == {"options": "error"}
    assert "datera_initiator_name" in doc["checks"][0]["detail"]
    bad_type = cli_factory(simulator, io_depth="lots")
    result = bad_type.run("check")
    assert result.rc == 1 and "datera_io_depth" in result.out + result.err


def test_verbose_logs_no_secrets(
    simulator_factory: Callable[..., Simulator], cli_factory: Callable[..., Cli]
) -> None:
    sim = simulator_factory(password=SECRET)
    cli = cli_factory(sim, password=SECRET)
    result = cli.run("check", "--write-test", "-v")
    assert result.rc == 0, result.err
    assert "DEBUG" in result.err and "PUT /v2.2/login -> 200" in result.err
    assert "datera_san_password" in result.err and "****" in result.err  # logged, masked
    everything = result.out + result.err
    assert SECRET not in everything
    assert not SESSION_KEY.search(everything), SESSION_KEY.findall(everything)


@pytest.mark.parametrize("command", COMMANDS)
def test_help_has_an_example(command: str) -> None:
    import subprocess

    out = subprocess.run(
        [str(SCRIPT), command, "--help"], capture_output=True, text=True, check=True
    )
    assert "example:" in out.stdout
    assert f"datera-glance {command}" in out.stdout.split("example:")[1]


def test_bad_usage_exits_2(cli: Cli) -> None:
    assert cli.run("ls", "--older-than", "soon").rc == 2
    assert cli.run("put", "x", "--id", "not-a-uuid").rc == 2
    assert cli.run("frobnicate", conf=False).rc == 2
    assert cli.run("show").rc == 2


def test_configuration_problems_name_the_fix(tmp_path: Any, simulator: Simulator, cli: Cli) -> None:
    missing = Cli(tmp_path / "nope.conf").run("ls")
    assert missing.rc == 1 and missing.err.count("\n") == 1
    assert "--config-file" in missing.err
    unknown = cli.run("ls", "--backend", "local")
    assert unknown.rc == 1
    assert (
        unknown.err == "error: backend 'local' is not a Datera backend in enabled_backends "
        "(pass --backend with one of: fast)\n"
    )


def test_check_says_whether_cinder_finds_the_images(
    simulator: Simulator, cli_factory: Callable[..., Cli]
) -> None:
    """Datera/cinder-driver ``datera_common.get_tenant``: see doc/source/cinder.rst."""
    cli = cli_factory(simulator, tenant_id="/root/images")
    doc = cli.json("check", "--cinder-tenant-id", "images")
    assert statuses(doc)["cinder clones"] == "ok"
    doc = cli.json("check", "--cinder-tenant-id", "")
    assert doc["ok"] is True  # a warning: Cinder copies instead
    (line,) = [c for c in doc["checks"] if c["name"] == "cinder clones"]
    assert line["status"] == "warning" and "looks in /root," in line["detail"]
    assert "cinder clones" not in statuses(cli.json("check"))  # a tenant Cinder can reach


def test_check_warns_about_a_tenant_no_cinder_setting_reaches(
    simulator: Simulator, cli_factory: Callable[..., Cli]
) -> None:
    cli = cli_factory(simulator, tenant_id="/root/rootfs")
    assert statuses(cli.json("check"))["cinder clones"] == "warning"
