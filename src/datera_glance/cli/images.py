"""The images of one backend's tenant as the commands see them: complete, uploading, orphan.

An image is an app instance of the store's tenant that ``datera_glance.ownership`` proves
glance's, in the state ``ownership.verdict`` gives it: complete (the Store finished it),
untagged (complete, but ``type: image`` is gone), *uploading* while its recorded upload is live
(``upload_state.Judge``) and an *orphan* otherwise. Everything else, Cinder's volumes above
all, is "not glance's": only ``ls --all`` shows it, and no command changes it.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from oslo_utils import units

from datera_glance import naming, ownership, upload_state
from datera_glance.cli.errors import CliError
from datera_glance.edf import EdfClient, errors, models
from datera_glance.ownership import COMPLETE, FOREIGN, ORPHAN, UNTAGGED, UPLOADING

if TYPE_CHECKING:
    from datera_glance.cli.config import BackendTarget

__all__ = ["COMPLETE", "FOREIGN", "ORPHAN", "UNTAGGED", "UPLOADING", "Image", "Inventory"]


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


@dataclass(frozen=True)
class Image:
    """An app instance of the tenant as the commands show it (``state`` FOREIGN: not glance's,
    and ``id`` the image id its name carries, if any)."""

    id: str | None
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


def classify(ai: models.AppInstance, metadata: dict[str, Any], judge: upload_state.Judge) -> Image:
    found = ownership.verdict(ai, metadata, judge)
    return Image(found.claim.image_id, ai, metadata, found.state, found.why, found.record)


class Inventory:
    """Lists and finds the app instances of the client's tenant, judged by the ownership rule:
    ``images`` gives glance's only unless asked for the others too."""

    def __init__(
        self,
        client: EdfClient,
        tenant: str,
        judge: upload_state.Judge,
    ) -> None:
        self.client = client
        self.tenant = tenant
        self.judge = judge

    @classmethod
    def of(cls, target: BackendTarget, judge: upload_state.Judge) -> Inventory:
        """The inventory of the configured backend's tenant, through its client."""
        return cls(target.client, target.settings.tenant, judge)

    def _read(self, ai: models.AppInstance) -> Image | None:
        if ai.tenant != self.tenant:  # never anything of another tenant
            return None
        try:
            metadata = self.client.get_metadata(ai.id)
        except errors.NotFound:  # deleted since it was listed
            return None
        return classify(ai, metadata, self.judge)

    def images(
        self, keep: Callable[[Image], bool] = lambda image: True, *, foreign: bool = False
    ) -> list[Image]:
        """glance's images (and, with ``foreign``, every other app instance of the tenant)."""
        found = []
        prefix = None if foreign else naming.LEGACY_AI_PREFIX
        for ai in self.client.list_app_instances(name_prefix=prefix):
            image = self._read(ai)
            if image is not None and (foreign or image.state != FOREIGN) and keep(image):
                found.append(image)
        return sorted(found, key=lambda image: (image.state == FOREIGN, image.id or image.ai.name))

    def find(self, image_id: str) -> Image | None:
        """The image ``image_id`` (either name form), or None. An app instance of that name
        that is not glance's comes back with state FOREIGN, when there is no image of glance's
        under the other name."""
        other = None
        for name in naming.ai_names(image_id):
            ai = self.client.lookup_app_instance(name)
            image = self._read(ai) if ai is not None else None
            if image is not None and image.state != FOREIGN:
                return image
            other = other or image
        return other

    def refresh(self, image: Image) -> Image | None:
        """``image`` read again (None if it is gone)."""
        try:
            ai = self.client.get_app_instance(image.ai.id)
        except errors.NotFound:
            return None
        return self._read(ai)


def require(target: BackendTarget, image_id: str, max_age: float) -> Image:
    """The image ``image_id`` of the target's tenant; CliError when there is none or it is not
    glance's (show, get, rm and verify name one image this way)."""
    judge = upload_state.Judge(max_age=max_age)
    image = Inventory.of(target, judge).find(image_id)
    if image is None:
        raise CliError(
            f"no image {image_id} in tenant {target.settings.tenant}",
            "datera-glance ls lists the images",
        )
    if image.state == FOREIGN:
        raise CliError(
            f"no image {image_id} in tenant {target.settings.tenant}: app instance "
            f"{image.ai.name} is not glance's ({image.why})",
            "datera-glance leaves it alone; ls --all lists what is not glance's",
        )
    return image
