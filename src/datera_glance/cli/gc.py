"""``datera-glance gc``: the leftovers of uploads that died; removed only with ``--apply``.

A leftover is an app instance in this backend's tenant, named like an image, not complete, whose
upload is not live (``upload_state.Judge``): its process on this host is gone, or another
host's heartbeat is older than ``--older-than``. Complete images, live uploads and other
tenants are never touched. Each candidate is read again right before it is removed; one without
any upload record (an older driver's, or an upload killed before it wrote the record) is
removed only if it still has none ``RECORDLESS_GRACE`` seconds after it was first seen, so an
upload that is just starting has time to write its record.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from datera_glance import upload_state
from datera_glance.cli import config, images, output
from datera_glance.cli.errors import CliError, explain
from datera_glance.edf import errors

LOG = logging.getLogger(__name__)

EXAMPLE = """example:
  datera-glance gc --config-file /etc/glance/glance-api.conf               # dry run
  datera-glance gc --config-file /etc/glance/glance-api.conf --older-than 0 --apply"""

RECORDLESS_GRACE = 5.0
HEADERS = ("ID", "APP INSTANCE", "VOLUME", "UPLOAD", "WHY", "ACTION")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    images.add_older_than(parser)
    parser.add_argument("--apply", action="store_true", help="remove them (default: dry run)")
    config.add_config_arguments(parser)
    output.add_output_arguments(parser)


class Collector:
    """Finds the leftovers of one tenant and removes the ones still dead on a second look."""

    def __init__(
        self,
        target: config.Target,
        max_age: float,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.target = target
        self.inventory = images.Inventory(
            target.client, target.settings.tenant, upload_state.Judge(max_age=max_age)
        )
        self.sleep = sleep

    def candidates(self) -> list[images.Image]:
        return self.inventory.images(lambda image: image.state == images.ORPHAN)

    def collect(self, apply: bool) -> list[dict[str, Any]]:
        found = self.candidates()
        if apply and any(image.record is None for image in found):
            self.sleep(RECORDLESS_GRACE)
        entries = []
        for image in found:
            entry: dict[str, Any] = {**image.as_json(), "action": "would remove", "error": None}
            if apply:
                entry.update(self._second_look(image))
            entries.append(entry)
        return entries

    def _second_look(self, image: images.Image) -> dict[str, Any]:
        again = self.inventory.refresh(image)
        if again is None:
            return {"action": "gone already"}
        if again.state != images.ORPHAN:
            return {"action": "kept", "state": again.state, "reason": again.why}
        try:
            self.remove(again)
        except Exception as exc:
            LOG.debug("Removing %s failed", again.ai.name, exc_info=True)
            return {"action": "failed", "error": str(explain(exc))}
        return {"action": "removed"}

    def remove(self, image: images.Image) -> None:
        """Release this host's hold of a dead writer's device, then offline and delete."""
        client = self.target.client
        attacher = self.target.attacher(client)
        if image.record is not None and image.record.host == upload_state.host_name():
            # The dead writer's attachment stays connected on this host (an iSCSI session)
            # until its last user releases it: attaching and releasing through the Attacher,
            # which drops dead users, is the one code path that disconnects it.
            with contextlib.suppress(errors.NotFound), attacher.attached(image.ai):
                pass

        def delete() -> None:
            with contextlib.suppress(errors.NotFound):
                client.set_offline(image.ai.id, force=True)
                client.delete_app_instance(image.ai.id, force=True)

        if not attacher.unless_attached(image.ai.uuid, delete):
            raise CliError(
                f"{image.ai.name} is attached on this host by a live process",
                "it is in use; gc leaves it",
            )
        LOG.info("Removed %s, the leftover of a dead upload", image.ai.name)


def run(args: argparse.Namespace) -> int:
    output.setup_logging(args.verbose)
    with config.opened(args) as target:
        entries = Collector(target, args.older_than).collect(args.apply)
    failed = any(entry["action"] == "failed" for entry in entries)
    if args.json:
        output.emit_json({"apply": args.apply, "older_than": args.older_than, "leftovers": entries})
        return 1 if failed else 0
    if not entries:
        print("no leftovers of dead uploads")
        return 0
    rows = [
        (
            e["id"],
            e["app_instance"],
            output.human_size(e["volume_size"]),
            f"{e['upload']['host']} pid {e['upload']['pid']}" if e["upload"] else None,
            e["reason"],
            e["action"] + (f": {e['error']}" if e["error"] else ""),
        )
        for e in entries
    ]
    output.table(HEADERS, rows)
    if not args.apply:
        print("dry run: pass --apply to remove them")
    return 1 if failed else 0
