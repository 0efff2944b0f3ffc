"""``datera-glance bench``: the copier's buffer size x depth sweep on this host's storage.

Runs on a scratch file (removed afterwards) in ``--dir``, or on a device the operator names
with ``--device PATH --yes-overwrite`` (its first bytes are overwritten), and prints the
recommended ``datera_io_buffer_size`` / ``datera_io_depth``. Needs no configuration file.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import re
import tempfile
from collections.abc import Iterator

from oslo_utils import units

from datera_glance import sweep
from datera_glance.cli import output
from datera_glance.cli.errors import CliError

EXAMPLE = """example:
  datera-glance bench --quick
  datera-glance bench --device /dev/sdx --yes-overwrite --json"""


_UNITS = {"": 1, "k": units.Ki, "m": units.Mi, "g": units.Gi}


def parse_size(text: str) -> int:
    """``64MiB``, ``1G``, ``1048576`` -> bytes (binary units)."""
    match = re.fullmatch(r"(\d+)\s*([kmg]?)(i?b)?", text.strip().lower())
    if not match or int(match.group(1)) == 0:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 64MiB)")
    return int(match.group(1)) * _UNITS[match.group(2)]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="256 MiB, 3 buffer sizes x 2 depths")
    parser.add_argument(
        "--size", type=parse_size, help="bytes per pass, e.g. 64MiB (256 MiB quick, else 1 GiB)"
    )
    parser.add_argument("--device", metavar="PATH", help="run on this device (destroys data)")
    parser.add_argument(
        "--yes-overwrite", action="store_true", help="confirm that --device may be overwritten"
    )
    parser.add_argument(
        "--dir", default=".", help="where the scratch file goes without --device (.)"
    )
    output.add_output_arguments(parser)


@contextlib.contextmanager
def _scratch(args: argparse.Namespace, size: int) -> Iterator[str]:
    if args.device:
        if not args.yes_overwrite:
            raise CliError(f"bench would overwrite {args.device}", "add --yes-overwrite")
        with open(args.device, "rb") as f:
            device_size = f.seek(0, os.SEEK_END)
        if device_size < size:
            raise CliError(
                f"{args.device} has {device_size} bytes, the sweep writes {size}",
                "use --quick or a bigger device",
            )
        yield args.device
        return
    fd, path = tempfile.mkstemp(dir=args.dir, prefix=".datera-glance-bench-")
    try:
        os.posix_fallocate(fd, 0, size)  # O_DIRECT writes into allocated blocks
        os.close(fd)
        yield path
    finally:
        os.unlink(path)


def run(args: argparse.Namespace) -> int:
    output.setup_logging(args.verbose)
    plan = sweep.QUICK if args.quick else sweep.FULL
    if args.size:
        plan = dataclasses.replace(plan, size=args.size)
    with _scratch(args, plan.size) as path:
        runner = sweep.Sweep(path, plan)

        def report(point: sweep.Point) -> None:
            if not args.json:
                output.warn(
                    f"{output.human_size(point.buffer_size)} x depth {point.depth}: "
                    f"{point.score:.0f} MB/s"
                )

        points = runner.run(report)
    best = sweep.recommend(points)
    if args.json:
        output.emit_json(
            {
                "path": args.device or "scratch file",
                "size": plan.size,
                "core": runner.copier.core_name,
                "results": [sweep.as_json(p) for p in points],
                "recommended": {
                    "datera_io_buffer_size": best.buffer_size,
                    "datera_io_depth": best.depth,
                }
                if best
                else None,
            }
        )
        return 0
    output.table(
        ("BUFFER", "DEPTH", "WRITE MB/s", "READ MB/s", "MD5+SHA512 WRITE MB/s", "SCORE"),
        [
            (
                output.human_size(p.buffer_size),
                p.depth,
                f"{p.write_MBps:.0f}",
                f"{p.read_MBps:.0f}",
                f"{p.hashed_write_MBps:.0f}",
                f"{p.score:.0f}",
            )
            for p in points
        ],
    )
    if best:
        print(f"recommended: datera_io_buffer_size = {best.buffer_size}")
        print(f"             datera_io_depth = {best.depth}")
    return 0
