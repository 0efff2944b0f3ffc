"""README's option table is written by hand: it lists every option once, in the order of
``options.SETTINGS``, with the default the code has (the sample config and the configuration
reference are generated from the same declarations)."""

from __future__ import annotations

import re
from pathlib import Path

from datera_glance import options

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()
ROW = re.compile(r"^\| `(datera_\w+)` \| ([^|]+) \|", re.MULTILINE)


def _shown(default: object) -> str:
    if default is None:
        return "unset"
    if isinstance(default, bool):
        return str(default).lower()
    return str(default)


def test_the_readme_table_has_every_option_with_its_default() -> None:
    rows = ROW.findall(README)
    assert [name for name, _ in rows] == [opt.name for opt in options.get_opts()]
    for opt, (name, default) in zip(options.get_opts(), rows, strict=True):
        shown = default.strip().strip("`")
        if opt.default is None and shown.startswith("—"):  # "— (required)"
            continue
        assert shown == _shown(opt.default), name
