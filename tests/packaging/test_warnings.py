"""Third-party warnings are silenced narrowly, and ours still show.

On 2026-12-06 cryptography 51 deprecated DSA, and dnspython (imported by eventlet, imported by
oslo.privsep, imported by os-brick) named it at import time: pytest's ``error`` filter turned
that into a collection error, and ``datera-glance`` printed eight lines of it before its output.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

from datera_glance import third_party_warnings

ROOT = Path(__file__).resolve().parents[2]

_WARN = """
import warnings
import datera_glance
from cryptography.utils import CryptographyDeprecationWarning
warnings.warn_explicit(
    "DSA is deprecated", CryptographyDeprecationWarning, "dsa.py", 14, module={module!r}
)
"""


def _stderr_of(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    return done.stderr


def test_pytest_filters_are_the_modules_filters() -> None:
    """pytest reads its filters before it imports our code, so pyproject.toml keeps a copy."""
    ini = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    lines = ini["filterwarnings"]
    assert lines[0] == "error"
    third_party = [line for line in lines[1:] if "127.0.0.1" not in line]
    assert third_party == third_party_warnings.pytest_lines()


def test_dnspython_dsa_deprecation_is_silent() -> None:
    """The warning as dnspython's ``dns/dnssecalgs/dsa.py`` raised it under cryptography 51."""
    assert _stderr_of(_WARN.format(module="dns.dnssecalgs.dsa")) == ""


def test_the_same_warning_from_our_code_still_shows() -> None:
    assert "DSA is deprecated" in _stderr_of(_WARN.format(module="datera_glance.store"))


def test_other_warnings_of_that_module_still_show() -> None:
    code = (
        "import warnings, datera_glance\n"
        "warnings.warn_explicit('x', UserWarning, 'dsa.py', 1, module='dns.dnssecalgs.dsa')"
    )
    assert "UserWarning" in _stderr_of(code)


def test_cli_help_prints_no_warning() -> None:
    """``datera-glance check --help`` imports every subcommand (os-brick included)."""
    done = subprocess.run(
        [sys.executable, "-m", "datera_glance.cli", "check", "--help"],
        capture_output=True, text=True, check=True, cwd=ROOT,
    )  # fmt: skip
    assert "usage:" in done.stdout
    assert done.stderr == ""
