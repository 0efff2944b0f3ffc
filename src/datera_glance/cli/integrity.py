"""Re-reading one image through ``Store.get`` and comparing its hashes with those recorded at
upload: md5 (glance's ``checksum``) and the multihash (``upload_state.MULTIHASH_ALGO``). Images
stored before the multihash was recorded are checked on md5 only, and say so. ``verify`` runs it
on the images it is given; ``check``'s write test on the image it just stored.
"""

from __future__ import annotations

from typing import Any

from glance_store.common import utils

from datera_glance import upload_state
from datera_glance.cli import config, images
from datera_glance.cli.errors import explain
from datera_glance.cli.progress import Progress, counted

OK = "ok"
MD5_ONLY = "ok (md5 only: no multihash recorded)"
GOOD = (OK, MD5_ONLY)


def _digests(target: config.BackendTarget, image: images.Image, algo: str | None) -> dict[str, Any]:
    md5 = utils.get_hasher("md5", False)
    multihash = utils.get_hasher(algo, False) if algo else None
    location = target.location(target.uri(image.ai.name))
    chunks, size = target.store.get(location)
    progress = Progress((image.id or image.ai.name)[:8], size)
    for chunk in counted(chunks, progress):
        md5.update(chunk)
        if multihash is not None:
            multihash.update(chunk)
    progress.finish(quiet=True)
    return {
        "md5": md5.hexdigest(),
        "multihash": multihash.hexdigest() if multihash is not None else None,
        "transfer": progress.summary(),
    }


def check_image(target: config.BackendTarget, image: images.Image) -> dict[str, Any]:
    """The verification result of one image (never raises for a bad image)."""
    md = image.metadata
    algo = md.get(upload_state.MULTIHASH_ALGO) or None
    result: dict[str, Any] = {
        "id": image.id,
        "size": image.length,
        "checksum": {"recorded": md.get("checksum") or None, "actual": None},
        "multihash": {"algo": algo, "recorded": md.get(upload_state.MULTIHASH), "actual": None}
        if algo
        else None,
        "transfer": None,
    }
    if image.state == images.UNTAGGED:
        return {**result, "status": f"untagged: {image.why}"}
    if image.state != images.COMPLETE:
        return {**result, "status": f"not verifiable: {image.state} ({image.why})"}
    try:
        digests = _digests(target, image, algo)
    except Exception as exc:
        return {**result, "status": f"unreadable: {explain(exc)}"}
    result["checksum"]["actual"] = digests["md5"]
    result["transfer"] = digests["transfer"]
    bad = []
    if digests["md5"] != result["checksum"]["recorded"]:
        bad.append("md5")
    if result["multihash"] is not None:
        result["multihash"]["actual"] = digests["multihash"]
        if digests["multihash"] != result["multihash"]["recorded"]:
            bad.append(str(algo))
    if bad:
        return {**result, "status": f"mismatch: {', '.join(bad)}"}
    return {**result, "status": OK if result["multihash"] is not None else MD5_ONLY}
