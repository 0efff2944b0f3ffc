"""Request validation against the real EDF v2.1 ``/api`` schema.

The schema is a capture of ``GET /v2.1/api`` from a real cluster (python-sdk test data, Apache
2.0), shipped as package data. v2.2 is not public; the simulator's schema of another version is
the v2.1 one plus the differences ``edf.versions`` lists for it that the drivers rely on
(``force`` on ``POST /initiators`` where initiators are tenant-scoped).
"""

from __future__ import annotations

import copy
import functools
import json
from importlib import resources
from typing import Any

import jsonschema

from datera_glance.edf import versions

_DATA = "datera_glance.simulator.data"
#: The API version the captured ``api_21.json`` is of.
CAPTURED_VERSION = "2.1"

# Schema keys of the endpoints the simulator serves (the capture's own spelling).
AI = "/app_instances"
AI_ONE = "/app_instances/:id"
SI = "/app_instances/:id/storage_instances/:storage_instance_name"
ACL = SI + "/acl_policy"
ACL_INITIATORS = ACL + "/initiators"
AUTH = SI + "/auth"
VOLUME = SI + "/volumes/:volume_name"
SNAPSHOTS = VOLUME + "/snapshots"
SNAPSHOT = SNAPSHOTS + "/:timestamp"
INITIATORS = "/initiators"
INITIATOR_ONE = "/initiators/:id"
TENANTS = "/tenants"
LOGIN = "/login"


@functools.lru_cache(maxsize=1)
def api_21() -> dict[str, Any]:
    """The captured v2.1 ``/api`` document, as served (do not mutate)."""
    text = resources.files(_DATA).joinpath("api_21.json").read_text(encoding="utf-8")
    doc: dict[str, Any] = json.loads(text)
    return doc


@functools.cache
def _modelled(row: versions.ApiVersion) -> dict[str, Any]:
    doc = copy.deepcopy(api_21())
    doc["version"] = f"v{row.name}"
    if row.tenant_initiators:
        init_create = doc[INITIATORS]["create"]["bodyParamSchema"]
        init_create["properties"]["force"] = {
            "type": "boolean",
            "descr": "Force create and override any warnings",
        }
    return doc


def api_doc(version: str) -> dict[str, Any]:
    """The ``/api`` of ``version``: the capture as is for its own version, else the capture
    with the differences ``edf.versions`` lists for that version (do not mutate)."""
    if version == CAPTURED_VERSION:
        return api_21()
    return _modelled(versions.version(version))


def _clean(node: Any) -> Any:
    """Drop what the capture has that JSON Schema cannot use (``"pattern": {}`` on booleans)."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "pattern" and not isinstance(value, str):
                continue
            out[key] = _clean(value)
        return out
    if isinstance(node, list):
        return [_clean(v) for v in node]
    return node


@functools.lru_cache(maxsize=64)
def _validator(version: str, key: str, verb: str) -> jsonschema.Draft4Validator | None:
    entry = api_doc(version).get(key, {}).get(verb)
    if not isinstance(entry, dict) or "bodyParamSchema" not in entry:
        return None
    return jsonschema.Draft4Validator(_clean(entry["bodyParamSchema"]))


def _describe(error: jsonschema.ValidationError) -> str:
    where = ".".join(str(p) for p in error.absolute_path) or "body"
    if error.validator == "additionalProperties":
        return f"{where}: {error.message}"
    if error.validator == "pattern":
        fmthelp = error.schema.get("fmthelp") if isinstance(error.schema, dict) else None
        return f"{where}: {fmthelp or error.message}"
    return f"{where}: {error.message}"


def validate(version: str, key: str, verb: str, body: Any) -> list[str]:
    """Return the schema errors of ``body`` for ``verb`` on ``key`` (empty when valid)."""
    validator = _validator(version, key, verb)
    if validator is None:
        return []
    errors = sorted(validator.iter_errors(body), key=lambda e: list(e.absolute_path))
    return [_describe(e) for e in errors]
