"""Which app instances are glance's, and what an image of glance's is in: the one rule.

Datera's Cinder driver shares the tenant with glance (that is what makes its fast clone find
the images) and names its volumes ``OS-<volume id>``, or ``OS-<display name>-<volume id>``,
so a volume whose display name is ``IMAGE`` is named ``OS-IMAGE-<volume id>``; it sets the app
instance's ``uuid`` to the volume id and ``create_mode`` to ``openstack``, exactly as glance's
drivers do for an image, and keeps its own image cache as ``OS-<image id>`` with ``uuid`` the
image id. A name, a uuid or a create mode therefore proves nothing. An app instance is
glance's only when its name carries an image id (``OS-IMAGE-<id>``, or ``OS-<id>`` from the
original driver's first version), its ``uuid`` is that id, and one of these proves who wrote it:

1. ``descr`` is ``marker(id)``: this driver sets it in the ``POST /app_instances`` that creates
   the app instance (EDF accepts ``descr`` there; metadata it does not), so an upload killed
   before its first metadata write is still provably glance's. Neither Cinder's driver nor the
   original glance driver sets ``descr``.
2. ``descr`` is empty and the metadata says ``type: image``: the tag Datera's original glance
   driver wrote with ``checksum`` and ``length`` when an image was complete, and the one
   Datera's Cinder driver itself reads as "created by Glance, never delete"
   (``datera_api22.py`` ``_clone_image_2_2``); Cinder writes ``type: cached_image`` only.
3. ``descr`` is empty, the name is ``OS-IMAGE-<id>`` and the metadata holds this driver's
   upload record (``upload_state``'s ``upload_*`` keys, written by no one else): an upload
   begun by a version of this driver from before the marker.

Anything else is not glance's: it is not listed as an image, never changed, never deleted.
``verdict`` adds the state of an image of glance's (complete, uploading, orphan, untagged): the
one judgement ``Store.add``, ``gc`` and the listings share.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from datera_glance import upload_state
from datera_glance.edf import models
from datera_glance.naming import AI_PREFIX, named_image_id

MARKER = "datera-glance image"

COMPLETE = "complete"
UPLOADING = "uploading"
ORPHAN = "orphan"
#: Complete (``length`` recorded) but ``type`` is no longer ``image``: Datera's Cinder driver
#: takes such an app instance for its own stale cache and force-deletes it.
UNTAGGED = "untagged"
FOREIGN = "not glance's"

UNTAGGED_WHY = (
    "complete, but its metadata lacks type: image; Datera's Cinder driver takes it for its own "
    "stale image cache and force-deletes it"
)


def marker(image_id: str) -> str:
    """The ``descr`` this driver gives an image's app instance when it creates it."""
    return f"{MARKER} {image_id}"


@dataclass(frozen=True)
class Claim:
    """Whether an app instance is glance's, and the proof (or what is missing)."""

    image_id: str | None  # the image id its name carries; None when it carries none
    ours: bool
    why: str


def claim(ai: models.AppInstance, metadata: Mapping[str, Any]) -> Claim:
    """The ownership rule (module docstring): glance's only with proof."""
    image_id = named_image_id(ai.name)
    if image_id is None:
        return Claim(None, False, "its name carries no image id")
    if ai.uuid != image_id:
        return Claim(image_id, False, f"its uuid {ai.uuid or '-'} is not the id in its name")
    if ai.descr:
        if ai.descr == marker(image_id) and ai.name.startswith(AI_PREFIX):
            return Claim(image_id, True, "created by datera-glance")
        return Claim(image_id, False, f"its descr {ai.descr!r} is not datera-glance's")
    if metadata.get("type") == "image":
        return Claim(image_id, True, "a complete image of a Datera glance driver (type: image)")
    if ai.name.startswith(AI_PREFIX) and upload_state.UploadRecord.from_metadata(metadata):
        return Claim(image_id, True, "an upload of an earlier datera-glance (upload record)")
    kind = metadata.get("type")
    if kind:
        return Claim(image_id, False, f"its metadata type is {kind!r}")
    return Claim(image_id, False, "no datera-glance descr, type: image or upload record")


@dataclass(frozen=True)
class Verdict:
    """What an app instance is to glance: not glance's, or an image of glance's in a state."""

    claim: Claim
    state: str
    why: str
    record: upload_state.UploadRecord | None

    @property
    def ours(self) -> bool:
        return self.claim.ours

    @property
    def leftover(self) -> bool:
        """The leftover of a dead upload: the only thing ``gc`` and ``Store.add`` delete."""
        return self.state == ORPHAN


def verdict(
    ai: models.AppInstance, metadata: Mapping[str, Any], judge: upload_state.Judge
) -> Verdict:
    """The one judgement of an app instance: whose it is, and if glance's, its state.

    Complete: ``type: image`` and ``length``. Untagged: ``length`` without ``type: image``.
    Otherwise the upload is live (uploading) or dead (orphan) by ``upload_state.judge_upload``;
    no upload record at all counts as dead.
    """
    owner = claim(ai, metadata)
    if not owner.ours:
        return Verdict(owner, FOREIGN, owner.why, None)
    record = upload_state.UploadRecord.from_metadata(metadata)
    if upload_state.image_length(metadata) is not None:
        return Verdict(owner, COMPLETE, "stored", record)
    if metadata.get("length") not in (None, ""):
        return Verdict(owner, UNTAGGED, UNTAGGED_WHY, record)
    if record is None:
        return Verdict(owner, ORPHAN, "incomplete, no upload record", None)
    live, why = upload_state.judge_upload(judge, record, ai.id)
    return Verdict(owner, UPLOADING if live else ORPHAN, why, record)
