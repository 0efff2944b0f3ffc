"""``datera-glance ls``: the images in this backend's tenant, with their state; ``--all`` adds
the tenant's other app instances (Cinder's volumes, say) as "not glance's"."""

from __future__ import annotations

import argparse

from datera_glance import upload_state
from datera_glance.cli import config, images, output

EXAMPLE = """example:
  datera-glance ls --config-file /etc/glance/glance-api.conf
  datera-glance ls --config-file /etc/glance/glance-api.conf --backend fast --orphans --json
  datera-glance ls --config-file /etc/glance/glance-api.conf --all   # and what is not glance's"""

HEADERS = ("ID", "SIZE", "CHECKSUM", "CREATED", "STATE", "ATTACHED HOSTS")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--orphans", action="store_true", help="only the leftovers of dead uploads")
    parser.add_argument(
        "--all",
        action="store_true",
        help="also the tenant's app instances that are not glance's (never touched by any "
        "command; the ID column shows their name)",
    )
    images.add_older_than(parser)
    config.add_config_arguments(parser)
    output.add_output_arguments(parser)


def run(args: argparse.Namespace) -> int:
    output.setup_logging(args.verbose)
    with config.opened(args) as target:
        judge = upload_state.Judge(max_age=args.older_than)
        inventory = images.Inventory.of(target, judge)
        found = inventory.images(
            lambda image: not args.orphans or image.state == images.ORPHAN, foreign=args.all
        )
        if args.json:
            output.emit_json(
                {
                    "backend": target.backend,
                    "tenant": target.settings.tenant,
                    "images": [image.as_json() for image in found],
                }
            )
            return 0
        rows = [
            (
                image.id if image.state != images.FOREIGN else image.ai.name,
                output.human_size(image.length),
                image.metadata.get("checksum") or None,
                image.created,
                image.state,
                ", ".join(image.hosts) or None,
            )
            for image in found
        ]
        output.table(HEADERS, rows)
    return 0
