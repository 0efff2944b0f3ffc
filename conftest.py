"""Repository-wide pytest setup: markers and the shared fixture plugins.

Each plugin under ``tests/plugins`` owns one kind of fixture (copier cores and loop devices,
the EDF simulator, configured Stores, glance-api), so tests and benchmarks share them.
"""

from __future__ import annotations

import os

import pytest

pytest_plugins = [
    "tests.plugins.core",
    "tests.plugins.simulator",
    "tests.plugins.store",
    "tests.plugins.glance",
    "tests.plugins.glance_features",
    "tests.plugins.cli",
    "tests.plugins.iscsi_guest",
]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip ``root`` tests loudly (with the reason) when not running as root."""
    if os.geteuid() == 0:
        return
    skip_root = pytest.mark.skip(reason="needs root for loop devices (run ./dev test as root)")
    for item in items:
        if "root" in item.keywords:
            item.add_marker(skip_root)
