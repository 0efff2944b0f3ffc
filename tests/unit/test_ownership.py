"""The ownership rule (``datera_glance.ownership``) on app instances as each driver leaves them.

Datera's Cinder driver (Datera/cinder-driver ``datera_common.get_name``, ``datera_api22.py``
``_create_volume_2_2``, ``_cache_vol_2_2``, ``_add_vol_meta_2_2``) names a volume
``OS-[<display name>-]<volume id>`` with ``uuid`` the volume id and keeps its image cache as
``OS-<image id>`` (``uuid`` the image id, ``type: cached_image``). Datera's original glance
driver named an image ``OS-IMAGE-<id>`` (first version ``OS-<id>``) with ``uuid`` the id and
wrote ``checksum``, ``length``, ``type: image`` at the end. This driver adds ``descr`` (its
marker) in the create request itself.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest

from datera_glance import ownership, upload_state
from datera_glance.edf import models

ID = str(uuid.uuid4())
VOLUME = str(uuid.uuid4())
CINDER_MD = {"host": "cinder@datera", "display_name": "IMAGE", "bootable": "False",
             "availability_zone": "nova"}  # fmt: skip
COMPLETE = {"checksum": "0" * 32, "length": "5", "type": "image"}
RECORD = upload_state.start_record(clock=lambda: 1.0e9)


def ai(name: str, ai_uuid: str, descr: str = "") -> models.AppInstance:
    return models.AppInstance(
        id=str(uuid.uuid4()), name=name, uuid=ai_uuid, path="", tenant="/root",
        admin_state="online", storage_instances=(), descr=descr,
    )  # fmt: skip


OURS: list[tuple[str, models.AppInstance, dict[str, Any]]] = [
    ("created, nothing written", ai(f"OS-IMAGE-{ID}", ID, ownership.marker(ID)), {}),
    ("uploading", ai(f"OS-IMAGE-{ID}", ID, ownership.marker(ID)), RECORD),
    ("complete", ai(f"OS-IMAGE-{ID}", ID, ownership.marker(ID)), COMPLETE),
    ("original driver", ai(f"OS-IMAGE-{ID}", ID), COMPLETE),
    ("original driver, first version", ai(f"OS-{ID}", ID), COMPLETE),
    ("earlier datera-glance upload", ai(f"OS-IMAGE-{ID}", ID), RECORD),
]
NOT_OURS: list[tuple[str, models.AppInstance, dict[str, Any]]] = [
    ("cinder volume", ai(f"OS-{VOLUME}", VOLUME), CINDER_MD),
    ("cinder volume without metadata", ai(f"OS-{VOLUME}", VOLUME), {}),
    ("display name IMAGE", ai(f"OS-IMAGE-{VOLUME}", VOLUME), CINDER_MD),
    ("display name IMAGE, no metadata", ai(f"OS-IMAGE-{VOLUME}", VOLUME), {}),
    ("cinder image cache", ai(f"OS-{ID}", ID), {"type": "cached_image"}),
    ("the original driver's killed upload", ai(f"OS-IMAGE-{ID}", ID), {}),
    ("marker of another image", ai(f"OS-IMAGE-{ID}", ID, ownership.marker(VOLUME)), {}),
    ("uuid not the named id", ai(f"OS-IMAGE-{ID}", VOLUME, ownership.marker(ID)), COMPLETE),
    ("someone else's descr", ai(f"OS-IMAGE-{ID}", ID, "backup of the image"), COMPLETE),
    ("not named like an image", ai("seed-1", ID), COMPLETE),
    ("first form with an upload record", ai(f"OS-{ID}", ID), RECORD),
]


@pytest.mark.parametrize(("case", "app", "metadata"), OURS, ids=[c[0] for c in OURS])
def test_provably_ours(case: str, app: models.AppInstance, metadata: dict[str, Any]) -> None:
    found = ownership.claim(app, metadata)
    assert found.ours and found.image_id == ID, found


@pytest.mark.parametrize(("case", "app", "metadata"), NOT_OURS, ids=[c[0] for c in NOT_OURS])
def test_not_ours(case: str, app: models.AppInstance, metadata: dict[str, Any]) -> None:
    found = ownership.verdict(app, metadata, upload_state.Judge(max_age=0))
    assert not found.ours and found.state == ownership.FOREIGN and not found.leftover, found


def test_states_of_ours() -> None:
    judge = upload_state.Judge(max_age=0)
    ours = ai(f"OS-IMAGE-{ID}", ID, ownership.marker(ID))
    assert ownership.verdict(ours, COMPLETE, judge).state == ownership.COMPLETE
    untagged = ownership.verdict(ours, {**COMPLETE, "type": ""}, judge)
    assert untagged.state == ownership.UNTAGGED and not untagged.leftover
    dead = ownership.verdict(ours, {}, judge)
    assert dead.leftover and dead.why == "incomplete, no upload record"
    other_host = {**RECORD, upload_state.HOST: "elsewhere.example"}
    assert ownership.verdict(ours, other_host, judge).leftover  # heartbeat older than 0 s
    live = ownership.verdict(ours, other_host, upload_state.Judge(max_age=1e12))
    assert live.state == ownership.UPLOADING


def test_the_marker_is_a_valid_edf_descr() -> None:
    """EDF v2.1 ``POST /app_instances`` ``descr``: ``^[a-zA-Z_][a-zA-Z0-9_\\-\\s\\.]{2,127}$``."""
    assert re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_\-\s\.]{2,127}", ownership.marker(ID))
