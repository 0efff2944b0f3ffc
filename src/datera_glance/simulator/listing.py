"""Listings: ``filter``, ``sort`` and paging (v2.2 ``offset``/``limit``, v2.1 ``{total}``)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from datera_glance.simulator.routing import ApiError, Request

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


@dataclass
class Listing:
    """A page of rendered items and the listing's metadata (the envelope carries both)."""

    items: list[dict[str, Any]]
    metadata: dict[str, Any]


def listing(req: Request, items: list[dict[str, Any]]) -> Listing:
    """Filter, sort and page ``items`` as the request's query asks."""
    flt = req.query.get("filter")
    if flt:
        keep = parse_filter(flt)
        items = [i for i in items if keep(i)]
    sort = req.query.get("sort")
    if sort:
        desc = sort.startswith("-")
        attr = sort.lstrip("-")
        items = sorted(items, key=lambda i: str(i.get(attr, "")), reverse=desc)
    total = len(items)
    limit = int_param(req.query, "limit", DEFAULT_LIMIT, 0, MAX_LIMIT)
    if req.version == "2.1":
        return Listing(items[:limit] if "limit" in req.query else items, {"total": total})
    offset = int_param(req.query, "offset", 0, 0, None)
    page = items[offset : offset + limit]
    return Listing(
        page,
        {"total_count": total, "request_count": len(page), "offset": offset, "limit": limit},
    )


def int_param(query: Mapping[str, str], name: str, default: int, lo: int, hi: int | None) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(
            422, f"Validation failed: {name} must be an integer", errors=[f"{name}: not an integer"]
        ) from None
    if value < lo or (hi is not None and value > hi):
        raise ApiError(
            422,
            f"Validation failed: {name} out of range",
            errors=[f"{name}: must be between {lo} and {hi}"],
        )
    return value


def parse_filter(expr: str) -> Callable[[dict[str, Any]], bool]:
    """A tiny subset of Resource Query Language: ``match(attr,REGEX)`` and ``attr=value``."""
    m = re.fullmatch(r"match\((\w+),(.*)\)", expr)
    if m:
        attr = m.group(1)
        try:
            rx = re.compile(m.group(2))
        except re.error as exc:
            raise ApiError(400, f"Bad regular expression in filter: {exc}") from None
        return lambda item: rx.search(str(item.get(attr, ""))) is not None
    m = re.fullmatch(r"(\w+)=(.*)", expr)
    if m:
        attr, value = m.group(1), m.group(2)
        return lambda item: str(item.get(attr, "")) == value
    raise ApiError(400, f"Unsupported filter {expr!r}: use match(attr,REGEX) or attr=value")
