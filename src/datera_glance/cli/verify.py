"""``datera-glance verify ID... | --all``: re-read images and check their recorded hashes.

Each image is read through ``Store.get`` (O_DIRECT, so the page cache cannot hide what the
device holds) and hashed with md5 and with the multihash algorithm recorded at upload
(``upload_state.MULTIHASH_ALGO``). Images stored before the multihash was recorded are checked
on md5 only, and say so. Exit 1 on any mismatch, incomplete or unreadable image, and on a
complete image whose metadata lost ``type: image`` (Datera's Cinder driver would take it for
its own stale cache and force-delete it; ``ownership.UNTAGGED``).
"""

from __future__ import annotations

import argparse
from typing import Any

from datera_glance import upload_state
from datera_glance.cli import config, images, integrity, output
from datera_glance.cli.errors import CliError
from datera_glance.cli.progress import rate_line

EXAMPLE = """example:
  datera-glance verify --config-file /etc/glance/glance-api.conf ID [ID...]
  datera-glance verify --config-file /etc/glance/glance-api.conf --all --json"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("image_ids", metavar="ID", nargs="*", help="the images to verify")
    parser.add_argument(
        "--all",
        action="store_true",
        help="every complete image in the tenant (one that lost its type: image tag fails)",
    )
    config.add_config_arguments(parser)
    output.add_output_arguments(parser)


def _selected(target: config.BackendTarget, args: argparse.Namespace) -> list[images.Image]:
    if args.all == bool(args.image_ids):
        raise CliError("name the images to verify, or pass --all (not both)")
    if args.all:
        judge = upload_state.Judge(max_age=upload_state.DEFAULT_MAX_AGE)
        inventory = images.Inventory.of(target, judge)
        return inventory.images(lambda image: image.state in (images.COMPLETE, images.UNTAGGED))
    return [
        images.require(target, image_id, upload_state.DEFAULT_MAX_AGE)
        for image_id in args.image_ids
    ]


def run(args: argparse.Namespace) -> int:
    output.setup_logging(args.verbose)
    with config.opened(args) as target:
        results = [integrity.check_image(target, image) for image in _selected(target, args)]
    ok = all(r["status"] in integrity.GOOD for r in results)
    if args.json:
        output.emit_json({"ok": ok, "images": results})
        return 0 if ok else 1
    output.table(
        ("ID", "SIZE", "MD5", "MULTIHASH", "RESULT"),
        [
            (
                r["id"],
                output.human_size(r["size"]),
                _verdict(r["checksum"]),
                _verdict(r["multihash"]) if r["multihash"] else "not recorded",
                r["status"],
            )
            for r in results
        ],
    )
    moved = [r["transfer"] for r in results if r["transfer"]]
    if moved:
        nbytes, seconds = sum(t["bytes"] for t in moved), sum(t["seconds"] for t in moved)
        output.warn(rate_line(nbytes, seconds))
    return 0 if ok else 1


def _verdict(digest: dict[str, Any]) -> str:
    if digest["actual"] is None:
        return "-"
    name = digest.get("algo") or "md5"
    return f"{name} ok" if digest["actual"] == digest["recorded"] else f"{name} MISMATCH"
