"""``datera-glance gc``: the leftovers of uploads that died; removed only with ``--apply``.

A leftover is an app instance of glance's (``datera_glance.ownership``: never Cinder's, never
anything else not provably glance's) in this backend's tenant, not complete, whose upload is
not live (``upload_state.Judge``): its process on this host is gone, or another host's
heartbeat is older than ``--older-than``. Complete images, live uploads, app instances that
are not glance's and other tenants are never touched. Each candidate is judged again by the
Store right before it is removed; one without any upload record (an upload killed between
creating its app instance and writing the record) is removed only if it still has none
``RECORDLESS_GRACE`` seconds after it was first seen, so an upload that is just starting has
time to write its record.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable
from typing import Any

from datera_glance import upload_state
from datera_glance.cli import config, images, output
from datera_glance.cli.errors import explain

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
    """Finds the leftovers of one tenant and has the Store remove the ones still dead on a
    second look (``Store.delete_leftover``: the same judgement and delete as ``Store.add``'s)."""

    def __init__(
        self,
        target: config.BackendTarget,
        max_age: float,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.target = target
        self.judge = upload_state.Judge(max_age=max_age)
        self.inventory = images.Inventory.of(target, self.judge)
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
        location = self.target.location(self.target.uri(image.ai.name))
        try:
            again = self.target.store.delete_leftover(location, self.judge)
        except Exception as exc:
            LOG.debug("Removing %s failed", image.ai.name, exc_info=True)
            return {"action": "failed", "error": str(explain(exc))}
        if again is None:
            return {"action": "gone already"}
        if not again.leftover:
            return {"action": "kept", "state": again.state, "reason": again.why}
        return {"action": "removed"}


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
