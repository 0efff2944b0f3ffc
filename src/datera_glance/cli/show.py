"""``datera-glance show ID``: one image's app instance, volume, metadata, ACL and upload."""

from __future__ import annotations

import argparse
from typing import Any

from datera_glance.cli import config, images, output

EXAMPLE = """example:
  datera-glance show --config-file /etc/glance/glance-api.conf \\
      3f1c6f0e-7c55-4d1e-9a0b-2f4c8e2d9a11"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("image_id", metavar="ID", help="the image id")
    images.add_older_than(parser)
    config.add_config_arguments(parser)
    output.add_output_arguments(parser)


def describe(target: config.BackendTarget, image: images.Image) -> dict[str, Any]:
    ai = image.ai
    doc = image.as_json()
    doc["location"] = target.location(target.uri(ai.name)).get_store_uri()
    doc.update(app_instance_id=ai.id, path=ai.path, tenant=ai.tenant, admin_state=ai.admin_state)
    doc["storage_instances"] = [
        {
            "name": si.name,
            "admin_state": si.admin_state,
            "op_state": si.op_state,
            "iqn": si.iqn or None,
            "ips": list(si.ips),
            "auth_type": si.auth_type,
            "acl": list(si.acl_initiators),
            "volumes": [
                {"name": v.name, "uuid": v.uuid, "size_gib": v.size_gib, "op_state": v.op_state}
                for v in si.volumes
            ],
        }
        for si in ai.storage_instances
    ]
    doc["metadata"] = dict(image.metadata)
    return doc


def _print(doc: dict[str, Any]) -> None:
    rows: list[tuple[str, Any]] = [
        ("id", doc["id"]),
        ("state", f"{doc['state']} ({doc['reason']})"),
        ("location", doc["location"]),
        ("size", output.human_size(doc["size"]) if doc["size"] is not None else None),
        ("volume size", output.human_size(doc["volume_size"])),
        ("app instance", f"{doc['app_instance']} ({doc['app_instance_id']})"),
        ("admin state", doc["admin_state"]),
        ("created", doc["created"]),
    ]
    for si in doc["storage_instances"]:
        rows.append((f"{si['name']}", f"{si['op_state']}, iqn {si['iqn'] or '-'}"))
        rows += [("  acl", path) for path in si["acl"]] or [("  acl", None)]
        rows += [(f"  {v['name']}", f"{v['size_gib']} GiB, {v['op_state']}") for v in si["volumes"]]
    rows += [(f"metadata {key}", value) for key, value in sorted(doc["metadata"].items())]
    output.table(("FIELD", "VALUE"), rows)


def run(args: argparse.Namespace) -> int:
    output.setup_logging(args.verbose)
    with config.opened(args) as target:
        doc = describe(target, images.require(target, args.image_id, args.older_than))
    if args.json:
        output.emit_json(doc)
    else:
        _print(doc)
    return 0
