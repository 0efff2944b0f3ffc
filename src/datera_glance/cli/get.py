"""``datera-glance get ID``: read an image (or a byte range) through ``Store.get``."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator
from typing import BinaryIO

from datera_glance.cli import config, images, output
from datera_glance.cli.errors import CliError
from datera_glance.cli.progress import Progress, counted

EXAMPLE = """example:
  datera-glance get --config-file /etc/glance/glance-api.conf ID -o image.raw
  datera-glance get --config-file /etc/glance/glance-api.conf ID --offset 0 --length 512 | xxd"""


def _count(text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"not a byte count: {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("image_id", metavar="ID", help="the image id")
    parser.add_argument("-o", "--output", metavar="FILE", help="write here (default: stdout)")
    parser.add_argument("--offset", type=_count, default=0, help="first byte to read (0)")
    parser.add_argument("--length", type=_count, help="bytes to read (default: to the end)")
    config.add_config_arguments(parser)
    output.add_output_arguments(parser)


@contextlib.contextmanager
def _sink(path: str | None) -> Iterator[BinaryIO]:
    if path is None:
        if sys.stdout.isatty():
            raise CliError("refusing to write image data to a terminal", "use -o FILE or a pipe")
        yield sys.stdout.buffer
        sys.stdout.flush()
        return
    with open(path, "wb") as f:
        yield f


def run(args: argparse.Namespace) -> int:
    output.setup_logging(args.verbose)
    if args.json and args.output is None:
        raise CliError("--json needs -o FILE", "stdout carries the image data otherwise")
    with config.opened(args) as target:
        image = images.require(target, args.image_id, 0.0)
        location = target.location(target.uri(image.ai.name))
        chunks, size = target.store.get(location, offset=args.offset, chunk_size=args.length)
        progress = Progress("get", size)
        with _sink(args.output) as out:
            for chunk in counted(chunks, progress):
                out.write(chunk)
        progress.finish(quiet=args.json)
    if args.json:
        output.emit_json(
            {
                "id": image.id,
                "output": args.output,
                "offset": args.offset,
                "size": size,
                "transfer": progress.summary(),
            }
        )
    return 0
