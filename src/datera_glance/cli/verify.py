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

from glance_store.common import utils

from datera_glance import upload_state
from datera_glance.cli import config, images, output, show
from datera_glance.cli.errors import CliError, explain
from datera_glance.cli.progress import Progress, counted, rate_line

EXAMPLE = """example:
  datera-glance verify --config-file /etc/glance/glance-api.conf ID [ID...]
  datera-glance verify --config-file /etc/glance/glance-api.conf --all --json"""

OK = "ok"
MD5_ONLY = "ok (md5 only: no multihash recorded)"
GOOD = (OK, MD5_ONLY)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("image_ids", metavar="ID", nargs="*", help="the images to verify")
    parser.add_argument(
        "--all",
        action="store_true",
        help="every complete image in the tenant (one that lost its type: image tag fails)",
    )
    config.add_config_arguments(parser)
    output.add_output_arguments(parser)


def _digests(target: config.Target, image: images.Image, algo: str | None) -> dict[str, Any]:
    md5 = utils.get_hasher("md5", False)
    multihash = utils.get_hasher(algo, False) if algo else None
    location = target.location(target.uri(image.ai.name))
    chunks, size = target.store.get(location)
    progress = Progress((image.id or image.ai.name)[:8], size)
    for chunk in counted(chunks, progress):
        md5.update(chunk)
        if multihash is not None:
            multihash.update(chunk)
    progress.finish(quiet=True)
    return {
        "md5": md5.hexdigest(),
        "multihash": multihash.hexdigest() if multihash is not None else None,
        "transfer": progress.summary(),
    }


def check_image(target: config.Target, image: images.Image) -> dict[str, Any]:
    """The verification result of one image (never raises for a bad image)."""
    md = image.metadata
    algo = md.get(upload_state.MULTIHASH_ALGO) or None
    result: dict[str, Any] = {
        "id": image.id,
        "size": image.length,
        "checksum": {"recorded": md.get("checksum") or None, "actual": None},
        "multihash": {"algo": algo, "recorded": md.get(upload_state.MULTIHASH), "actual": None}
        if algo
        else None,
        "transfer": None,
    }
    if image.state == images.UNTAGGED:
        return {**result, "status": f"untagged: {image.why}"}
    if image.state != images.COMPLETE:
        return {**result, "status": f"not verifiable: {image.state} ({image.why})"}
    try:
        digests = _digests(target, image, algo)
    except Exception as exc:
        return {**result, "status": f"unreadable: {explain(exc)}"}
    result["checksum"]["actual"] = digests["md5"]
    result["transfer"] = digests["transfer"]
    bad = []
    if digests["md5"] != result["checksum"]["recorded"]:
        bad.append("md5")
    if result["multihash"] is not None:
        result["multihash"]["actual"] = digests["multihash"]
        if digests["multihash"] != result["multihash"]["recorded"]:
            bad.append(str(algo))
    if bad:
        return {**result, "status": f"mismatch: {', '.join(bad)}"}
    return {**result, "status": OK if result["multihash"] is not None else MD5_ONLY}


def _selected(target: config.Target, args: argparse.Namespace) -> list[images.Image]:
    if args.all == bool(args.image_ids):
        raise CliError("name the images to verify, or pass --all (not both)")
    if args.all:
        judge = upload_state.Judge(max_age=upload_state.DEFAULT_MAX_AGE)
        inventory = images.Inventory(target.client, target.settings.tenant, judge)
        return inventory.images(lambda image: image.state in (images.COMPLETE, images.UNTAGGED))
    return [
        show.find(target, image_id, upload_state.DEFAULT_MAX_AGE) for image_id in args.image_ids
    ]


def run(args: argparse.Namespace) -> int:
    output.setup_logging(args.verbose)
    with config.opened(args) as target:
        results = [check_image(target, image) for image in _selected(target, args)]
    ok = all(r["status"] in GOOD for r in results)
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
