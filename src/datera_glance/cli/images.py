"""The images of one backend's tenant as the commands see them: complete, uploading or orphan.

An image is an app instance named like one (``OS-IMAGE-<uuid>``, or the upstream driver's first
form ``OS-<uuid>``) in the store's tenant. Complete means the Store finished it (``type: image``
and ``length`` in its metadata); an incomplete one is *uploading* while its recorded upload is
live (``upload_state.Judge``) and an *orphan* otherwise.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from glance_store.common import utils
from oslo_utils import units

from datera_glance import upload_state
from datera_glance.edf import EdfClient, errors, models
from datera_glance.store import AI_PREFIX, LEGACY_AI_PREFIX

COMPLETE = "complete"
UPLOADING = "uploading"
ORPHAN = "orphan"


def parse_duration(text: str) -> float:
    """``90``, ``90s``, ``15m``, ``1h``, ``2d`` -> seconds."""
    factors = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    value = text.strip().lower()
    factor = factors.get(value[-1:], 0)
    number = value[:-1] if factor else value
    try:
        seconds = float(number) * (factor or 1)
    except ValueError:
        seconds = -1.0
    if seconds < 0:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 0, 90s, 15m, 1h, 2d)")
    return seconds


def add_older_than(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--older-than",
        type=parse_duration,
        default=upload_state.DEFAULT_MAX_AGE,
        metavar="DURATION",
        help="another host's upload counts as dead after this long without a heartbeat "
        "(default 1h; e.g. 0, 90s, 15m, 2d); this host's uploads are judged by their process",
    )


def image_id_of(name: str) -> str | None:
    """The image id in an app instance name, or None for an app instance that is no image."""
    for prefix in (AI_PREFIX, LEGACY_AI_PREFIX):
        if name.startswith(prefix) and utils.is_uuid_like(name[len(prefix) :]):
            return name[len(prefix) :]
    return None


@dataclass(frozen=True)
class Image:
    id: str
    ai: models.AppInstance
    metadata: dict[str, Any]
    state: str
    why: str
    record: upload_state.UploadRecord | None

    @property
    def length(self) -> int | None:
        return upload_state.image_length(self.metadata)

    @property
    def volume_bytes(self) -> int:
        try:
            return self.ai.volume.size_gib * units.Gi
        except LookupError:
            return 0

    @property
    def hosts(self) -> list[str]:
        """Initiators in the ACL: the hosts that attached it (entries are never removed)."""
        acl = [si.acl_initiators for si in self.ai.storage_instances]
        return [path.rsplit("/", 1)[-1] for paths in acl for path in paths]

    @property
    def created(self) -> str | None:
        started = self.record.started_at if self.record else None
        return upload_state.timestamp(started) if started else None

    def as_json(self) -> dict[str, Any]:
        md = self.metadata
        return {
            "id": self.id,
            "app_instance": self.ai.name,
            "state": self.state,
            "reason": self.why,
            "size": self.length,
            "volume_size": self.volume_bytes,
            "checksum": md.get("checksum") or None,
            "multihash_algo": md.get(upload_state.MULTIHASH_ALGO) or None,
            "multihash": md.get(upload_state.MULTIHASH) or None,
            "created": self.created,
            "attached_hosts": self.hosts,
            "upload": self.record.as_json() if self.record else None,
        }


def classify(
    ai: models.AppInstance, metadata: dict[str, Any], judge: upload_state.Judge
) -> Image | None:
    image_id = image_id_of(ai.name)
    if image_id is None:
        return None
    record = upload_state.UploadRecord.from_metadata(metadata)
    if upload_state.image_length(metadata) is not None:
        return Image(image_id, ai, metadata, COMPLETE, "stored", record)
    if record is None:
        return Image(image_id, ai, metadata, ORPHAN, "incomplete, no upload record", None)
    live, why = judge.live(record)
    return Image(image_id, ai, metadata, UPLOADING if live else ORPHAN, why, record)


class Inventory:
    """Lists and finds the images of the client's tenant."""

    def __init__(
        self,
        client: EdfClient,
        tenant: str,
        judge: upload_state.Judge,
    ) -> None:
        self.client = client
        self.tenant = tenant
        self.judge = judge

    def _read(self, ai: models.AppInstance) -> Image | None:
        if ai.tenant != self.tenant:  # never anything of another tenant
            return None
        try:
            metadata = self.client.get_metadata(ai.id)
        except errors.NotFound:  # deleted since it was listed
            return None
        return classify(ai, metadata, self.judge)

    def images(self, keep: Callable[[Image], bool] = lambda image: True) -> list[Image]:
        found = []
        for ai in self.client.list_app_instances(name_prefix=LEGACY_AI_PREFIX):
            image = self._read(ai)
            if image is not None and keep(image):
                found.append(image)
        return sorted(found, key=lambda image: image.id)

    def find(self, image_id: str) -> Image | None:
        """The image ``image_id`` (either name form), or None."""
        for name in (AI_PREFIX + image_id, LEGACY_AI_PREFIX + image_id):
            ai = self.client.lookup_app_instance(name)
            if ai is not None:
                image = self._read(ai)
                if image is not None:
                    return image
        return None

    def refresh(self, image: Image) -> Image | None:
        """``image`` read again (None if it is gone)."""
        try:
            ai = self.client.get_app_instance(image.ai.id)
        except errors.NotFound:
            return None
        return self._read(ai)
