"""CHAP credentials of image volumes, and keeping a target's CHAP setting in line.

What an attacker sees is public: EDF shows a target's CHAP user name (``auth.target_user_name``)
and an iSCSI login sends it in clear with a response to the target's challenge (MD5 of the
secret and the challenge, open to offline guessing). So the user name carries nothing derived
from a secret, and each secret is 16 characters drawn from 62 (95 bits) by HMAC-SHA256 keyed
with ``datera_chap_key``: a key of its own (never the cluster password), the same on every
glance-api host, so every host computes each image's credentials without storing or
exchanging them. One image's secret, even recovered, tells nothing of the key or of another
image's secret. Datera's Cinder driver draws random credentials and keeps them in Cinder's
database; glance has no such shared store, and EDF's metadata is readable by anyone who can
read the app instance, so credentials are derived, not stored.

EDF never shows a target's secret, so nothing tells whether the target holds this key's:
every fresh attach sets it (one ``PUT``), which also moves images from an earlier key or from
an older version's password-derived secrets to this one.
"""

from __future__ import annotations

import hashlib
import hmac
import string
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from datera_glance.edf import EdfClient, models

SECRET_LENGTH = 16  # EDF: 12 to 16 characters; 16 is the longest every target accepts
_ALPHABET = string.ascii_letters + string.digits  # nothing iscsiadm or tgtadm could misread
_DOMAIN = b"datera-glance CHAP secret v2\0"


def chap_credentials(key: bytes, ai_uuid: str) -> tuple[str, str]:
    """CHAP user name and secret of one app instance. The name is the uuid's start only."""
    digest = int.from_bytes(hmac.new(key, _DOMAIN + ai_uuid.encode(), hashlib.sha256).digest())
    chars = []
    for _ in range(SECRET_LENGTH):
        digest, index = divmod(digest, len(_ALPHABET))
        chars.append(_ALPHABET[index])
    return f"glance-{ai_uuid.replace('-', '')[:12]}", "".join(chars)


def refresh_chap(
    client: EdfClient, ai: models.AppInstance, use_chap: bool, key: bytes
) -> tuple[str, str] | None:
    """Make ``ai``'s target ask for this configuration's CHAP (set on every fresh attach,
    see the module's doc; removed when ``datera_use_chap`` was turned off, so existing images
    stay attachable); return the credentials to log in with."""
    if not use_chap:
        if ai.storage_instance.auth_type != "none":
            client.clear_chap(ai.id)
        return None
    chap = chap_credentials(key, ai.uuid or ai.id)
    client.set_chap(ai.id, *chap)
    return chap
