"""``datera-glance put FILE``: store a file as an image through ``Store.add``, as glance does."""

from __future__ import annotations

import argparse
import contextlib
import os
import stat
import sys
import uuid
from typing import Any, BinaryIO

from datera_glance.cli import config, output
from datera_glance.cli.progress import CountingReader, Progress, rate_line

EXAMPLE = """example:
  datera-glance put --config-file /etc/glance/glance-api.conf cirros.qcow2
  curl -s https://example.org/big.raw | \\
      datera-glance put - --config-file /etc/glance/glance-api.conf"""


def _uuid(text: str) -> str:
    try:
        return str(uuid.UUID(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a UUID: {text!r}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", help="the image file; - reads stdin")
    parser.add_argument("--id", type=_uuid, help="the image id (default: a new UUID)")
    parser.add_argument(
        "--size-unknown",
        action="store_true",
        help="upload as glance does a chunked upload: the volume grows as data arrives",
    )
    config.add_config_arguments(parser)
    output.add_output_arguments(parser)


@contextlib.contextmanager
def _source(path: str, size_unknown: bool) -> Any:
    """``(file, size)``; size 0 means unknown (stdin, pipes, --size-unknown)."""
    if path == "-":
        yield sys.stdin.buffer, 0
        return
    with open(path, "rb") as f:
        st = os.fstat(f.fileno())
        regular = stat.S_ISREG(st.st_mode)
        yield f, (st.st_size if regular and not size_unknown else 0)


def store_file(
    target: config.BackendTarget, image_id: str, f: BinaryIO, size: int
) -> dict[str, Any]:
    progress = Progress("put", size)
    uri, written, md5, multihash, metadata = target.store.add(
        image_id, CountingReader(f, progress), size, target.hash_algo
    )
    progress.finish(quiet=True)
    return {
        "id": image_id,
        "location": uri,
        "size": written,
        "checksum": md5,
        "multihash_algo": target.hash_algo,
        "multihash": multihash,
        "location_metadata": metadata,
        "transfer": progress.summary(),
    }


def run(args: argparse.Namespace) -> int:
    output.setup_logging(args.verbose)
    image_id = args.id or str(uuid.uuid4())
    with config.opened(args) as target, _source(args.file, args.size_unknown) as (f, size):
        doc = store_file(target, image_id, f, size)
    if args.json:
        output.emit_json(doc)
        return 0
    output.table(
        ("FIELD", "VALUE"),
        [
            ("id", doc["id"]),
            ("location", doc["location"]),
            ("size", f"{doc['size']} ({output.human_size(doc['size'])})"),
            ("checksum", doc["checksum"]),
            ("multihash", f"{doc['multihash_algo']}:{doc['multihash']}"),
        ],
    )
    output.warn(rate_line(doc["transfer"]["bytes"], doc["transfer"]["seconds"]))
    return 0
