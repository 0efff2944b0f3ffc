"""``datera-glance rm ID``: delete an image through ``Store.delete``."""

from __future__ import annotations

import argparse

from datera_glance import upload_state
from datera_glance.cli import config, images, output
from datera_glance.cli.errors import CliError

EXAMPLE = """example:
  datera-glance rm --config-file /etc/glance/glance-api.conf ID"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("image_id", metavar="ID", help="the image id")
    config.add_config_arguments(parser)
    output.add_output_arguments(parser)


def run(args: argparse.Namespace) -> int:
    output.setup_logging(args.verbose)
    with config.opened(args) as target:
        image = images.require(target, args.image_id, upload_state.DEFAULT_MAX_AGE)
        if image.state == images.UPLOADING:
            raise CliError(
                f"image {image.id} is being uploaded ({image.why})",
                "wait for the upload to end, or stop it",
            )
        target.store.delete(target.location(target.uri(image.ai.name)))
    if args.json:
        output.emit_json({"id": image.id, "app_instance": image.ai.name, "deleted": True})
    else:
        print(f"deleted image {image.id} ({image.ai.name})")
    return 0
