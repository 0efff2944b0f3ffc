"""``edf.versions`` is the one home of what each EDF API version does.

The option's choices, ``ClientConfig``, the client's negotiation order and the simulator's
accepted versions all derive from the table; nothing else in the package names a version.
"""

from __future__ import annotations

import ast
import dataclasses
import re
from pathlib import Path

import pytest

from datera_glance import options
from datera_glance.edf import ClientConfig, versions
from datera_glance.simulator import Simulator
from datera_glance.simulator import schema as sim_schema

PACKAGE = Path(versions.__file__).resolve().parents[1]
VERSION_TEXT = re.compile(r"v?\d+\.\d+")
#: Version literals allowed outside the table, each with its reason.
ALLOWED = {
    ("simulator/schema.py", "2.1"),  # CAPTURED_VERSION: the version of the captured /api file
}


def test_every_capability_is_stated_by_every_row() -> None:
    """A capability with a default would let a new row inherit a guess: none has one."""
    for field in dataclasses.fields(versions.ApiVersion):
        assert field.default is dataclasses.MISSING, f"{field.name} has a default"
        assert field.default_factory is dataclasses.MISSING, f"{field.name} has a default"
    for row in versions.VERSIONS:
        for field in dataclasses.fields(row):
            assert getattr(row, field.name) is not None, (row.name, field.name)


def test_rows_are_unique_and_oldest_first() -> None:
    keys = [tuple(int(p) for p in v.name.split(".")) for v in versions.VERSIONS]
    assert all(
        VERSION_TEXT.fullmatch(v.name) and not v.name.startswith("v") for v in versions.VERSIONS
    )
    assert keys == sorted(set(keys))
    assert tuple(reversed(versions.NAMES)) == versions.NEGOTIATION_ORDER


def test_what_the_known_versions_do() -> None:
    """v2.1: one GET per listing (its schema has no offset/limit), no ``force`` on initiators;
    v2.2: offset/limit paging (Datera's SDK) and tenant-scoped initiators with ``force``
    (Datera's Cinder driver, DAT-15931)."""
    assert versions.version("2.1") == versions.ApiVersion(
        "2.1", pages=False, tenant_initiators=False
    )
    assert versions.version("2.2") == versions.ApiVersion("2.2", pages=True, tenant_initiators=True)
    with pytest.raises(ValueError, match=re.escape("2.1, 2.2")):
        versions.version("2.3")


def test_option_config_and_simulator_follow_the_table() -> None:
    opt = next(o for o in options._OPTS if o.name == "datera_api_version")
    assert tuple(opt.type.choices) == (versions.AUTO, *versions.NEGOTIATION_ORDER)  # type: ignore[attr-defined]
    for name in versions.NAMES:
        assert name in (opt.help or "")
        assert ClientConfig(host="h", api_version=f"v{name}").api_version == name
    with pytest.raises(ValueError, match=re.escape("api_version must be one of auto, 2.2, 2.1")):
        ClientConfig(host="h", api_version="2.3")
    for row in versions.VERSIONS:
        doc = sim_schema.api_doc(row.name)
        create = doc[sim_schema.INITIATORS]["create"]["bodyParamSchema"]["properties"]
        assert ("force" in create) is row.tenant_initiators


def test_the_simulator_offers_the_table_by_default(tmp_path: Path) -> None:
    assert Simulator(tmp_path).api_versions == versions.NAMES
    with pytest.raises(ValueError, match=re.escape("unsupported EDF API version '2.3'")):
        Simulator(tmp_path, api_versions=("2.3",))


def _version_literals(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and VERSION_TEXT.fullmatch(node.value)
    ]


def test_no_module_but_the_table_names_an_api_version() -> None:
    """A ``== "2.2"`` or a list of versions outside the table is the drift this catches: each
    branch on a version asks its row for a capability instead."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        where = path.relative_to(PACKAGE).as_posix()
        if where == "edf/versions.py":
            continue
        for line, text in _version_literals(path):
            if (where, text) not in ALLOWED:
                found.append(f"{where}:{line}: {text!r}")
    assert not found, "API versions named outside edf/versions.py:\n" + "\n".join(found)
