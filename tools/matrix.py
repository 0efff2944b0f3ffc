"""The support matrix: the Store against each maintained OpenStack release's versions.

For each release of ``constraints/sources.toml`` other than the current one (``./dev test``
covers that), ``./dev matrix [RELEASE...]`` builds ``.cache/matrix/<release>`` from that
release's constraints file, installs this project into it the way a glance-api host would
(``pip install -c constraints/<release>.txt .``: pip checks our bounds against the release's
versions), and runs the store contract suite and the Store's integration tests on loop media.
The oldest release also runs the glance-api e2e suite, under its own glance (``--e2e`` /
``--no-e2e`` override). A release pip refuses fails the run: every release listed is one the
driver supports, and ``pyproject.toml``'s lower bounds refuse anything older.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tools.constraints import CONSTRAINTS_DIR, ROOT, SOURCES, current_release, release_names

MATRIX = ROOT / ".cache" / "matrix"
#: The Store's own suites: glance_store's contract, faults, uploads, reads, on loop media.
STORE_TESTS = (
    "tests/unit/test_store.py",
    "tests/unit/test_store_errors.py",
    "tests/unit/test_store_config.py",
    "tests/unit/test_store_location.py",
    "tests/unit/test_store_legacy.py",
    "tests/integration/test_store_contract.py",
    "tests/integration/test_store_faults.py",
    "tests/integration/test_unknown_size.py",
    # The transport's deadline against a dripping server differs by urllib3 (1.26 before 2026.1).
    "tests/integration/test_edf_hostile_http.py",
)
#: glance-api end to end: what the driver does under each glance (uploads, downloads, deletes,
#: sizes, lingering, outages, restarts, load, the demo); the feature suites of glance 33
#: (``tests/e2e/test_feature_*``) assert glance 33's own features and run in ./dev test only.
E2E_TESTS = (
    "tests/e2e/test_glance_api.py",
    "tests/e2e/test_glance_outage.py",
    "tests/e2e/test_size_and_linger.py",
    "tests/e2e/test_stores_detail.py",
    "tests/e2e/test_load.py",
    "tests/e2e/test_harness.py",
    "tests/e2e/test_demo.py",
)


@dataclass(frozen=True)
class Row:
    release: str
    outcome: str  # "passed", "FAILED", "refused by pip", "install FAILED"
    detail: str
    seconds: float


def releases(sources: Path = SOURCES) -> list[str]:
    """Every release but the current one, oldest first."""
    current = current_release()
    return [r for r in release_names(sources) if r != current]


def _run(
    cmd: Sequence[str | os.PathLike[str]],
    log: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> int:
    with log.open("ab") as out:
        out.write(f"\n$ {' '.join(map(str, cmd))}\n".encode())
        out.flush()
        done = subprocess.run(
            cmd, stdout=out, stderr=subprocess.STDOUT, check=False, env=env, cwd=cwd
        )
        return done.returncode


def build_venv(release: str, log: Path) -> tuple[Path, int]:
    """The release's venv with this project installed under its constraints (cached by key)."""
    constraints = CONSTRAINTS_DIR / f"{release}.txt"
    key = hashlib.sha256(
        constraints.read_bytes() + (ROOT / "pyproject.toml").read_bytes()
    ).hexdigest()[:12]
    venv = MATRIX / release
    stamp = venv / f".complete-{key}"
    # This release's constraints for every pip run (the isolated build env too), not ./dev's.
    env = {**os.environ, "PIP_CONSTRAINT": str(constraints)}
    pip: list[str | os.PathLike[str]] = [venv / "bin" / "python", "-m", "pip", "install", "-q"]
    if stamp.exists():  # the dependencies are cached; the project is always this checkout's
        return venv, _run([*pip, "--no-deps", "--force-reinstall", ROOT], log, env=env)
    shutil.rmtree(venv, ignore_errors=True)
    rc = _run([sys.executable, "-m", "venv", venv], log)
    rc = rc or _run([*pip, "--upgrade", "pip", "setuptools", "wheel", "Cython"], log, env=env)
    rc = rc or _run([*pip, f"{ROOT}[test]"], log, env=env)
    if rc == 0:
        stamp.touch()
    return venv, rc


def run_release(release: str, e2e: bool) -> Row:
    started = time.monotonic()
    log = MATRIX / f"{release}.log"
    MATRIX.mkdir(parents=True, exist_ok=True)
    log.unlink(missing_ok=True)
    venv, rc = build_venv(release, log)
    if rc != 0:
        refused = "ResolutionImpossible" in log.read_text(errors="replace")
        outcome = "refused by pip" if refused else "install FAILED"
        return Row(release, outcome, str(log), time.monotonic() - started)
    env = {k: v for k, v in os.environ.items() if k != "PIP_CONSTRAINT"}
    env["DATERA_GLANCE_CONSTRAINTS"] = str(CONSTRAINTS_DIR / f"{release}.txt")
    env["DATERA_GLANCE_REQUIRE_EXTENSIONS"] = "1"
    pytest: list[str | os.PathLike[str]] = [venv / "bin" / "python", "-m", "pytest", "-q"]
    pytest += ["-p", "no:cacheprovider"]
    # The Store's suites import the package as pip installed it into the release's venv.
    rc = _run([*pytest, f"--junitxml={MATRIX / release}.xml", *STORE_TESTS], log, env, ROOT)
    summary = _summary(log)
    if e2e:
        # The e2e harness builds glance's venv (glance of that release) from the checkout, so
        # the test process imports the checkout's package (./dev built its compiled core).
        e2e_env = {**env, "PYTHONPATH": str(ROOT / "src")}
        junit = f"--junitxml={MATRIX / release}-e2e.xml"
        rc = _run([*pytest, junit, *E2E_TESTS], log, e2e_env, ROOT) or rc
        summary += f"; e2e: {_summary(log)}"
    return Row(release, "passed" if rc == 0 else "FAILED", summary, time.monotonic() - started)


def _summary(log: Path) -> str:
    """pytest's last line: ``206 passed in 475.15s (0:07:55)``."""
    return log.read_text(errors="replace").strip().splitlines()[-1].strip("= ")


def table(rows: Sequence[Row]) -> str:
    lines = ["| release | outcome | detail | minutes |", "|---|---|---|---|"]
    lines += [f"| {r.release} | {r.outcome} | {r.detail} | {r.seconds / 60:.1f} |" for r in rows]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="./dev matrix", description=__doc__.split("\n")[0])
    parser.add_argument("releases", nargs="*", help="default: every release but the current")
    parser.add_argument(
        "--e2e",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="run the glance-api e2e suite (default: the oldest release only)",
    )
    args = parser.parse_args(argv)
    known = releases()
    rows = []
    for release in [r for r in known if not args.releases or r in args.releases]:
        e2e = args.e2e if args.e2e is not None else release == known[0]
        print(f"==> matrix {release}: store suites{' and e2e' if e2e else ''}", file=sys.stderr)
        rows.append(run_release(release, e2e))
        print(table(rows[-1:]).splitlines()[-1], file=sys.stderr)
    text = table(rows)
    (MATRIX / "report.md").write_text(text + "\n")
    print(text)
    return 0 if all(r.outcome == "passed" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
