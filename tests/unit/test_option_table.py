"""Each option is declared once (``options.SETTINGS``) and the store's settings follow from it.

Adding an option means its ``Setting`` in options.py and its typed ``StoreSettings`` field;
these tests fail when the two drift apart, when a field's type cannot hold what oslo.config
gives for the option, or when a module other than options.py reads a ``datera_*`` value out of
a config group or casts or checks it again (the old ``StoreSettings._read`` did both).
"""

from __future__ import annotations

import ast
import dataclasses
import types
import typing
from pathlib import Path

import pytest
from oslo_config import cfg
from oslo_config import types as cfg_types

from datera_glance import options
from datera_glance.store import StoreSettings

PACKAGE = Path(options.__file__).parent
NOT_OPTIONS = {"lock_path"}  # [oslo_concurrency] lock_path: glance's option, not ours
CASTS = {"int", "float", "bool", "str"}


def test_every_option_fills_exactly_one_settings_field() -> None:
    names = [setting.opt.name for setting in options.SETTINGS]
    fields = [setting.field for setting in options.SETTINGS]
    assert len(set(names)) == len(names) and len(set(fields)) == len(fields)
    assert [opt.name for opt in options.get_opts()] == names
    declared = {f.name for f in dataclasses.fields(StoreSettings)}
    assert declared - NOT_OPTIONS == set(fields), "StoreSettings and options.SETTINGS differ"


def _python_type(opt: cfg.Opt) -> type:
    kind = opt.type
    if isinstance(kind, cfg_types.Boolean):
        return bool
    if isinstance(kind, cfg_types.Integer):  # PortOpt's Port is an Integer
        return int
    if isinstance(kind, cfg_types.Float):
        return float
    assert isinstance(kind, cfg_types.String), (opt.name, kind)
    return str


@pytest.mark.parametrize("setting", options.SETTINGS, ids=lambda s: s.opt.name)
def test_the_field_type_holds_the_option_value(setting: options.Setting) -> None:
    """mypy checks the fields' users; this checks the fields against the options."""
    hint = typing.get_type_hints(StoreSettings)[setting.field]
    allowed = set(typing.get_args(hint)) if isinstance(hint, types.UnionType) else {hint}
    assert _python_type(setting.opt) in allowed, (setting.field, hint)
    may_be_unset = setting.opt.default is None and not setting.required
    if may_be_unset and setting.check is None:
        assert type(None) in allowed, f"{setting.field} is None when unset"


def test_a_missing_field_is_caught() -> None:
    """The first test can fail: a StoreSettings without one of the fields differs."""
    fewer = {f.name for f in dataclasses.fields(StoreSettings)} - {"io_depth"} - NOT_OPTIONS
    assert fewer != {setting.field for setting in options.SETTINGS}


def _offences(tree: ast.AST, option_names: set[str], checks: set[str]) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in option_names:
            found.append(f"line {node.lineno}: reads .{node.attr}")
        if not isinstance(node, ast.Call):
            continue
        func, args = node.func, node.args
        if _calls_options(node, checks):
            found.append(f"line {node.lineno}: checks {ast.unparse(func)}")
        named = args[1] if len(args) > 1 else None
        getattr_call = isinstance(func, ast.Name) and func.id == "getattr"
        if getattr_call and isinstance(named, ast.Constant) and named.value in option_names:
            found.append(f"line {node.lineno}: getattr {named.value}")
        cast = isinstance(func, ast.Name) and func.id in CASTS and bool(args)
        if cast and _reads_option(args[0], option_names, checks | {"read", "read_one"}):
            found.append(f"line {node.lineno}: casts {ast.unparse(node)}")
    return found


def _calls_options(node: ast.expr, names: set[str]) -> bool:
    """``options.<one of names>(...)``."""
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
        return False
    owner = node.func.value
    return isinstance(owner, ast.Name) and owner.id == "options" and node.func.attr in names


def _reads_option(node: ast.expr, option_names: set[str], readers: set[str]) -> bool:
    """``group.datera_x`` or ``options.value/read/read_one/<check>(...)``: a value oslo.config
    typed already."""
    if isinstance(node, ast.Attribute):
        return node.attr in option_names
    return _calls_options(node, readers)


def _modules() -> list[Path]:
    own = PACKAGE / "options.py"
    return [path for path in sorted(PACKAGE.rglob("*.py")) if path != own]


def test_only_options_reads_casts_and_checks_option_values() -> None:
    option_names = {opt.name for opt in options.get_opts()}
    checks = {"value"} | {s.check.__name__ for s in options.SETTINGS if s.check is not None}
    offences = {
        str(path.relative_to(PACKAGE)): found
        for path in _modules()
        if (found := _offences(ast.parse(path.read_text()), option_names, checks))
    }
    assert offences == {}, "use options.read or options.read_one"


def test_the_source_check_catches_the_old_store_code() -> None:
    old = (
        "def _read(group):\n"
        "    port = int(get('san_port'))\n"
        "    ip = options.host('datera_san_ip', options.value(group, 'datera_san_ip'))\n"
        "    return group.datera_io_depth, float(options.value(group, 'datera_request_timeout'))\n"
    )
    found = _offences(ast.parse(old), {"datera_io_depth"}, {"value", "host"})
    assert len(found) == 5, found  # .datera_io_depth, host, value twice, the float cast
    assert _offences(ast.parse("str(options.OptionError('x', 'y', 'z'))"), set(), {"value"}) == []
