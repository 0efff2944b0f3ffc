"""What the commands print: aligned tables or ``--json`` on stdout, logs on stderr.

Every ``--json`` document is one object; its shape per command is documented in the README
("Operator commands") and kept stable: fields are added, never renamed or removed.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from oslo_utils import units

_SIZE_UNITS = ((units.Ti, "TiB"), (units.Gi, "GiB"), (units.Mi, "MiB"), (units.Ki, "KiB"))


def add_output_arguments(parser: argparse.ArgumentParser, *, json_output: bool = True) -> None:
    if json_output:
        parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="DEBUG logs on stderr (never secrets)"
    )


def setup_logging(verbose: bool) -> None:
    """DEBUG logs of every library with ``-v``; none otherwise (the command reports what it
    found itself, once)."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.CRITICAL,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def human_size(nbytes: int | None) -> str:
    """``1536`` -> ``1.5 KiB``; None -> ``-``."""
    if nbytes is None:
        return "-"
    for unit, label in _SIZE_UNITS:
        if abs(nbytes) >= unit:
            return f"{nbytes / unit:.1f} {label}"
    return f"{nbytes} B"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], out: TextIO | None = None) -> None:
    """Aligned columns, two spaces apart; ``None`` cells print as ``-``."""
    out = out or sys.stdout
    cells = [[("-" if c is None else str(c)) for c in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    for row in [list(headers), *cells]:
        line = "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True))
        print(line.rstrip(), file=out)


def emit_json(document: dict[str, Any], out: TextIO | None = None) -> None:
    print(json.dumps(document, indent=2, sort_keys=True), file=out or sys.stdout)


def warn(message: str) -> None:
    print(message, file=sys.stderr)
