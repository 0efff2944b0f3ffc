"""Every environment the project makes installs the versions of ``constraints/current.txt``.

A fresh clone on 2026-12-06 took cryptography 51.0.1, released after the last landing, because
nothing bounded it, and ``./dev test`` stopped before its first test. Now every pip install of
``./dev`` (PIP_CONSTRAINT) and of the glance-api venv (``-c``) is held to OpenStack's
upper-constraints of the release glance-api hosts run, plus our own tools' versions.
"""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from collections import Counter
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from demo import glance_env
from tools import constraints, latest, matrix

ROOT = Path(__file__).resolve().parents[2]
CURRENT = ROOT / "constraints" / "current.txt"


def _pins() -> dict[str, str]:
    return constraints.pinned(CURRENT.read_text().splitlines())


def _project_requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for group in project["optional-dependencies"].values():
        reqs += group
    return [Requirement(r) for r in reqs]


def test_everything_the_project_installs_is_pinned() -> None:
    names = [r.name for r in _project_requirements()]
    names += [Requirement(r).name for r in glance_env.GLANCE_REQUIREMENTS]
    names += [Requirement(r).name for r in glance_env.build_requirements(ROOT)]
    pins = _pins()
    assert [n for n in names if constraints.canonical(n) not in pins] == []


def test_the_library_keeps_ranges_that_admit_the_pins() -> None:
    """A library that pins breaks the environments it is installed into."""
    pins = _pins()
    for req in _project_requirements():
        assert not any(s.operator in ("==", "===") for s in req.specifier), req
        assert req.specifier.contains(pins[constraints.canonical(req.name)], prereleases=True)


def test_lower_bounds_are_the_oldest_release_the_matrix_tests() -> None:
    """pip refuses a release the driver was never tested on, instead of glance-api failing
    to load it (glance_store 4.x has no TimeoutError: compat.py bridges that)."""
    oldest = matrix.releases()[0]
    lines = (ROOT / "constraints" / f"{oldest}.txt").read_text().splitlines()
    listed = constraints.pinned(
        lines[: lines.index(next(ln for ln in lines if "not in OpenStack" in ln))]
    )
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for req in map(Requirement, project["dependencies"]):
        key = constraints.canonical(req.name)
        if key in listed:  # OpenStack's list; our own tools' bounds are ours to choose
            assert str(req.specifier) == f">={listed[key]}", (req, oldest)


def test_build_requires_admits_what_the_build_needs() -> None:
    """``license = "Apache-2.0"`` (PEP 639) needs setuptools 77; 65.5, Python 3.11's, fails."""
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"]
    setuptools = next(Requirement(r) for r in requires if r.startswith("setuptools"))
    assert not setuptools.specifier.contains("76.1.0")
    assert setuptools.specifier.contains("77.0.0")


def test_this_venv_has_the_pinned_versions() -> None:
    """``./dev`` installed .venv under the constraints (what CI runs the suite with)."""
    in_force = glance_env.constraints_file(ROOT)
    if in_force is None:
        pytest.skip("./dev latest: no constraints in force, by design")
    pins = constraints.pinned(in_force.read_text().splitlines())
    wrong = {}
    for dist in importlib.metadata.distributions():
        key = constraints.canonical(dist.metadata["Name"])
        if key in pins and pins[key] != dist.version:
            wrong[key] = (pins[key], dist.version)
    assert wrong == {}


def test_glance_venv_is_held_to_the_constraints() -> None:
    """glance_env passes ``-c`` itself, so the e2e venv is pinned outside ./dev too;
    ``none`` (``./dev latest``) lifts them."""
    assert glance_env.constraints_file(ROOT, {}) == CURRENT
    env = {glance_env.CONSTRAINTS_ENV: "none"}
    assert glance_env.constraints_file(ROOT, env) is None


def test_glance_venv_key_follows_the_constraints(tmp_path: Path) -> None:
    """New constraints make a new cached glance venv instead of reusing the old one."""
    other = tmp_path / "other.txt"
    other.write_text(CURRENT.read_text().replace("glance===33.0.0", "glance===33.0.1"))
    first = glance_env.GlanceVenv(ROOT, tmp_path, environ={}).venv_dir
    env = {glance_env.CONSTRAINTS_ENV: str(other)}
    assert glance_env.GlanceVenv(ROOT, tmp_path, environ=env).venv_dir != first


def test_current_names_a_release_of_sources() -> None:
    release = constraints.load_release(None)
    assert CURRENT.resolve() == release.path
    pins = _pins()
    for name, version in release.pins.items():
        assert pins[constraints.canonical(name)] == version


def test_apply_pins_replaces_every_marker_line_and_adds_the_rest() -> None:
    upstream = [
        "# a comment",
        "glance_store===4.10.0;python_version=='3.9'",
        "glance_store===5.2.0;python_version>='3.10'",
        "os-brick===6.13.0",
        "",
    ]
    out = constraints.apply_pins(upstream, {"glance-store": "5.7.0", "glance": "33.0.0"})
    assert [line.split("  #")[0] for line in out] == [
        "# a comment",
        "glance-store===5.7.0",
        "os-brick===6.13.0",
        "glance===33.0.0",
    ]


def test_regenerating_keeps_the_local_part_and_reports_changes() -> None:
    release = constraints.Release("2099.1", "https://example.invalid/uc", {})
    text = constraints.render(release, "/tmp/uc.txt", ["os-brick===7.1.1"], {"ruff": "0.17.6"})
    assert re.search(r"(?m)^# generated from: a copy, uc\.txt$", text)
    lines = text.splitlines()
    assert constraints.local_part_of(lines) == ["ruff===0.17.6"]
    old = constraints.pinned(lines)
    new = {**old, "ruff": "0.18.0", "mypy": "2.0.0"}
    del new["os-brick"]
    assert constraints.changes(old, new) == [
        "  mypy: (none) -> 2.0.0",
        "  os-brick: 7.1.1 -> (none)",
        "  ruff: 0.17.6 -> 0.18.0",
    ]


def test_latest_report_names_the_package_that_broke() -> None:
    """The 2026-12-06 failure as pytest printed it: the report names cryptography 51.0.1."""
    log = (
        'Error while loading plugin "tests.plugins.store".\n'
        ".venv/lib/python3.11/site-packages/dns/dnssecalgs/dsa.py:14: key: dsa.DSAPublicKey\n"
        "E   cryptography.utils.CryptographyDeprecationWarning: DSA is deprecated\n"
    )
    modules = {"dns": ["dnspython"], "cryptography": ["cryptography"]}
    seen = latest.culprits(log, modules)
    assert seen == Counter({"dnspython": 1, "cryptography": 1})
    pins = {"cryptography": "43.0.3", "dnspython": "2.9.2", "eventlet": "0.41.2"}
    now = {"cryptography": "51.0.1", "dnspython": "2.9.2", "eventlet": "0.41.3"}
    text = latest.report(3, pins, now, seen)
    broke = text.split("## Broke it")[1].split("##")[0]
    assert "- cryptography 51.0.1 (constraints: 43.0.3)" in broke
    assert "dnspython" not in broke and "eventlet" not in broke
    assert "- eventlet: 0.41.2 -> 0.41.3" in text
