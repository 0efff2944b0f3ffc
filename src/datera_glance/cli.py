"""The ``datera-glance`` command line.

Exit codes: 0 ok, 1 a problem found, 2 bad usage. Subcommands live in their own modules and
register themselves here through ``_SUBCOMMANDS`` so this file stays a thin dispatcher.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from datera_glance import __version__

# name -> (module, help). Each module provides ``add_arguments(parser)`` and ``run(args) -> int``.
_SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "simulator": ("datera_glance.simulator.cli", "run the EDF API simulator"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="datera-glance",
        description="Glance image store backend for Datera EDF: tools.",
    )
    parser.add_argument("--version", action="version", version=f"datera-glance {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in _SUBCOMMANDS.items():
        module = importlib.import_module(module_name)
        sp = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(sp)
        sp.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help(sys.stderr)
        return 2
    result: int = args._run(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
