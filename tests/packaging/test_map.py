"""docs/interfaces.md is the map: every module of the package is on it.

A module added without a line on the map is the drift this catches (the simulator's modules are
mapped in its own README, which interfaces.md points to).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "datera_glance"
MAP = (ROOT / "docs" / "interfaces.md").read_text()
SIMULATOR_MAP = (PACKAGE / "simulator" / "README.md").read_text()
# The checkout's glance-api harness (``demo/``, not in the wheel) is on the same map.
MODULES = sorted(
    p
    for p in [*PACKAGE.rglob("*.py"), *(ROOT / "demo").rglob("*.py")]
    if p.name not in ("__init__.py", "__main__.py")
)


@pytest.mark.parametrize("module", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_module_is_on_the_map(module: Path) -> None:
    where = SIMULATOR_MAP if "simulator" in module.relative_to(ROOT).parts else MAP
    named = re.search(r"`[^`\n]*\b" + re.escape(module.stem) + r"\b[^`\n]*`", where)
    assert named, f"{module.relative_to(ROOT)} is not named in its map"
