"""``./dev wheel`` (``python -m build``): an sdist with the Cython source, a wheel with only the
compiled core, and the wheel working in a fresh virtualenv as glance_store uses it.

glance_store loads drivers by name from the ``glance_store.drivers`` entry point group
(glance_store/backend.py ``_load_store``: stevedore's ``DriverManager``), which is what the
fresh venv checks, with glance_store's own function.
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
import textwrap
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import datera_glance

ROOT = Path(__file__).resolve().parents[2]
NAME = f"datera_glance-{datera_glance.__version__}"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run(
        [str(ROOT / "dev"), "wheel", str(out)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    yield out


def _wheel(dist: Path) -> Path:
    [wheel] = dist.glob(f"{NAME}-*.whl")
    return wheel


def test_sdist_has_the_cython_source_and_not_the_generated_c(dist: Path) -> None:
    with tarfile.open(dist / f"{NAME}.tar.gz") as sdist:
        names = {n.removeprefix(f"{NAME}/") for n in sdist.getnames()}
    assert "src/_chunkio.pyx" in names
    assert not [n for n in names if n.endswith((".c", ".so"))]
    for shipped in (
        "etc/glance/rootwrap.d/images.filters",
        "etc/glance/glance-api.conf.sample",
        "devstack/plugin.sh",
        "contrib/glance-33-stores-detail-unknown-type.patch",
        "tox.ini",
        "LICENSE",
        "constraints/current.txt",
    ):
        assert shipped in names, shipped


def test_wheel_carries_the_license(dist: Path) -> None:
    """pyproject declares Apache-2.0 (PEP 639); the text travels with the wheel."""
    with zipfile.ZipFile(_wheel(dist)) as wheel:
        names = wheel.namelist()
        [metadata] = [n for n in names if n.endswith(".dist-info/METADATA")]
        text = wheel.read(metadata).decode()
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names), names
    assert "License-Expression: Apache-2.0" in text


def test_wheel_has_no_test_harness(dist: Path) -> None:
    """The glance-api harness (``demo``: venv builder, PostgreSQL, uwsgi) stays in the
    checkout; the wheel holds what a glance-api host or an operator runs."""
    with zipfile.ZipFile(_wheel(dist)) as wheel:
        names = wheel.namelist()
    assert "datera_glance/store.py" in names and "datera_glance/cli/__main__.py" in names
    assert "datera_glance/simulator/__init__.py" in names  # devstack runs it
    assert not [n for n in names if "/demo/" in f"/{n}"], "the harness is in the wheel"
    top = {n.split("/")[0] for n in names}
    assert top <= {"datera_glance", f"{NAME}.dist-info", f"{NAME}.data"}, top


def test_wheel_has_the_compiled_core_only(dist: Path) -> None:
    wheel = _wheel(dist)
    assert "-cp3" in wheel.name and wheel.name.endswith(".whl") and "none-any" not in wheel.name
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        entry_points = zf.read(f"{NAME}.dist-info/entry_points.txt").decode()
    assert [n for n in names if n.startswith("datera_glance/_chunkio.") and n.endswith(".so")]
    assert not [n for n in names if n.endswith((".pyx", ".c"))]
    assert "[glance_store.drivers]\ndatera = datera_glance.store:Store" in entry_points


CHECK = textwrap.dedent(
    """
    import datera_glance, datera_glance._chunkio, datera_glance.chunkio as chunkio
    from glance_store import backend
    from oslo_config import cfg
    from datera_glance.store import Store
    assert chunkio.CORE == "compiled", chunkio.CORE
    assert "site-packages" in datera_glance._chunkio.__file__, datera_glance._chunkio.__file__
    backend.register_opts(cfg.CONF)
    assert backend._load_store(cfg.CONF, "datera", invoke_load=False) is Store
    print("ok", datera_glance._chunkio.__file__)
    """
)


def test_wheel_installs_into_a_fresh_venv(dist: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    done = subprocess.run([*pip, str(_wheel(dist))], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    # Away from the checkout, without this process's environment: only the installed wheel.
    env = {"PATH": "/usr/bin:/bin", "DATERA_GLANCE_REQUIRE_EXTENSIONS": "1"}
    done = subprocess.run(
        [str(venv / "bin" / "python"), "-c", CHECK],
        capture_output=True, text=True, check=False, cwd=tmp_path, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith("ok ")
    done = subprocess.run(
        [str(venv / "bin" / "datera-glance"), "--version"],
        capture_output=True, text=True, check=False, cwd=tmp_path, env=env,
    )  # fmt: skip
    assert done.stdout.strip() == f"datera-glance {datera_glance.__version__}", done.stderr
