"""The ``datera-glance`` command line.

Exit codes: 0 ok, 1 a problem found, 2 bad usage. Each subcommand lives in its own module,
registered in ``_SUBCOMMANDS``, with ``add_arguments(parser)`` and ``run(args) -> int``; this
package only dispatches and turns errors into one line (``errors.py``).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from datera_glance import __version__

# name -> (module, help). Each module provides ``add_arguments(parser)``, ``run(args) -> int``
# and may provide ``EXAMPLE`` (shown at the end of its --help).
_SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "check": ("datera_glance.cli.check", "check the configuration, the cluster and this host"),
    "ls": ("datera_glance.cli.ls", "list the images in this backend's tenant"),
    "show": ("datera_glance.cli.show", "show one image's app instance, metadata and ACL"),
    "put": ("datera_glance.cli.put", "store a file as an image, through the Store"),
    "get": ("datera_glance.cli.get", "read an image (or a byte range of it)"),
    "rm": ("datera_glance.cli.rm", "delete an image"),
    "verify": ("datera_glance.cli.verify", "re-read images and check their recorded hashes"),
    "gc": ("datera_glance.cli.gc", "find (and remove) the leftovers of dead uploads"),
    "bench": ("datera_glance.cli.bench", "sweep copier buffer size x depth on this host"),
    "simulator": ("datera_glance.simulator.cli", "run the EDF API simulator"),
}

_SIMULATOR_EXAMPLE = (
    "example:\n  datera-glance simulator --data-dir /tmp/edfsim --port 7717 --media file"
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="datera-glance",
        description="Glance image store backend for Datera EDF: operator tools.",
        epilog="example:\n  datera-glance check --config-file /etc/glance/glance-api.conf",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"datera-glance {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in _SUBCOMMANDS.items():
        module = importlib.import_module(module_name)
        example = getattr(module, "EXAMPLE", None) or _SIMULATOR_EXAMPLE
        sp = sub.add_parser(
            name,
            help=help_text,
            description=help_text,
            epilog=example,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(sp)
        sp.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from datera_glance.cli import errors

    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help(sys.stderr)
        return 2
    return errors.guarded(args._run, args)


if __name__ == "__main__":
    sys.exit(main())
