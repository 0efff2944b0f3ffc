"""Warnings that libraries we import raise about themselves, silenced narrowly.

Importing os-brick pulls in oslo.privsep, eventlet and dnspython; each may warn about its own
deprecations at import time (cryptography 51 made dnspython's DSA support warn eight times).
They are not ours to fix and say nothing to an operator, so the CLI and glance-api never show
them; every other warning still shows. Each entry names the category and the module it is
attributed to (or, where the importing module varies, the message), never a whole category.

pytest's ``filterwarnings`` in pyproject.toml must list the same entries (pytest reads them
before it imports any code; tests/packaging/test_warnings.py keeps the two equal).
"""

from __future__ import annotations

import warnings
from typing import NamedTuple


class Filter(NamedTuple):
    message: str  # a regex matched at the start of the warning's text ("" matches all)
    category: str  # "module.Class", resolved when applied
    module: str  # a regex matched at the start of the module the warning is attributed to
    why: str


FILTERS: tuple[Filter, ...] = (
    Filter(
        "",
        "cryptography.utils.CryptographyDeprecationWarning",
        r"dns\.dnssecalgs\.",
        "cryptography >= 51 deprecates DSA; dnspython names it at import (via eventlet)",
    ),
    Filter(
        r"\s*Eventlet is deprecated",
        "builtins.Warning",  # eventlet's own EventletDeprecationWarning, not a DeprecationWarning
        "",
        "eventlet warns on import; oslo.privsep (os-brick) imports it",
    ),
    Filter(
        r"Using fork\(\) is a bad idea",
        "builtins.DeprecationWarning",
        "",
        "eventlet then warns at every fork (subprocess, multiprocessing) of the process",
    ),
    Filter(
        "event(let|ulet)utils module is deprecated",
        "builtins.DeprecationWarning",
        "",
        "os-brick -> oslo.log or oslo.service -> oslo.utils (older oslo.utils spell it eventulet)",
    ),
    Filter(
        r"Using function/method 'exception_to_unicode\(\)' is deprecated",
        "builtins.DeprecationWarning",
        r"glance_store\.",
        "glance_store before 5.0 (2025.1) logs a refused backend with oslo.utils' deprecated call",
    ),
    Filter(
        r"The 'oslo_service\.eventlet_backdoor' module usage is deprecated",
        "builtins.DeprecationWarning",
        "",
        "os-brick's InitiatorConnector.factory imports every connector; one imports oslo.service's"
        " eventlet backend, which imports its deprecated backdoor module (seen in the iSCSI lane)",
    ),
)


def _category(path: str) -> type[Warning] | None:
    module_name, _, name = path.rpartition(".")
    try:
        module = __import__(module_name, fromlist=[name])
    except ImportError:
        return None  # that library is not installed: nothing of it can warn
    category = getattr(module, name, None)
    return category if isinstance(category, type) and issubclass(category, Warning) else None


def pytest_lines() -> list[str]:
    """The entries as pytest's ``filterwarnings`` ini lines."""
    return [f"ignore:{f.message}:{f.category}:{f.module}" for f in FILTERS]


def silence() -> None:
    """Install the filters in this process (idempotent: the warnings module dedups them)."""
    for entry in FILTERS:
        category = _category(entry.category)
        if category is not None:
            warnings.filterwarnings("ignore", entry.message, category, entry.module)
