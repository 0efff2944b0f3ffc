"""Listings: ``filter``, ``sort`` and paging (v2.2 ``offset``/``limit``, v2.1 ``{total}``)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from datera_glance.edf import versions
from datera_glance.simulator.routing import ApiError, Request
from datera_glance.simulator.work import Work

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


@dataclass
class Listing:
    """A page of rendered items and the listing's metadata (the envelope carries both)."""

    items: list[dict[str, Any]]
    metadata: dict[str, Any]


T = TypeVar("T")


def listing(
    req: Request,
    items: Sequence[T],
    render: Callable[[T], dict[str, Any]] | None = None,
    *,
    fields: Callable[[T], Mapping[str, Any]] | None = None,
    work: Work | None = None,
) -> Listing:
    """Filter, sort and page ``items`` as the request's query asks; render only the page.

    ``render`` makes an item's JSON (``None``: the items are JSON already); ``fields`` its
    cheap top-level fields, which filters and sorts read without rendering. A filter or sort
    examines every item, as it does on EDF: that cost is not optimised away.
    """
    show: Callable[[T], dict[str, Any]] = render or (lambda i: i)  # type: ignore[assignment,return-value]
    flt = req.query.get("filter")
    sort = req.query.get("sort")
    if (flt or sort) and work is not None:
        work.scanned += len(items)
    if flt:
        attr, test = parse_filter(flt)
        items = [i for i in items if test(_value(i, attr, show, fields))]
    if sort:
        desc = sort.startswith("-")
        attr = sort.lstrip("-")
        items = sorted(items, key=lambda i: _value(i, attr, show, fields), reverse=desc)
    total = len(items)
    limit = int_param(req.query, "limit", DEFAULT_LIMIT, 0, MAX_LIMIT)
    if not versions.version(req.version).pages:
        page = items[:limit] if "limit" in req.query else items
        return Listing([show(i) for i in page], {"total": total})
    offset = int_param(req.query, "offset", 0, 0, None)
    page = items[offset : offset + limit]
    return Listing(
        [show(i) for i in page],
        {"total_count": total, "request_count": len(page), "offset": offset, "limit": limit},
    )


def _value(
    item: T,
    attr: str,
    show: Callable[[T], dict[str, Any]],
    fields: Callable[[T], Mapping[str, Any]] | None,
) -> str:
    """The attribute as filters and sorts compare it: the string of the top-level field."""
    if fields is not None:
        cheap = fields(item)
        if attr in cheap:
            return str(cheap[attr])
    return str(show(item).get(attr, ""))


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


def parse_filter(expr: str) -> tuple[str, Callable[[str], bool]]:
    """A tiny subset of Resource Query Language: ``match(attr,REGEX)`` (a regex search) and
    ``attr=value``; returns the attribute and the test of its string value."""
    m = re.fullmatch(r"match\((\w+),(.*)\)", expr)
    if m:
        try:
            rx = re.compile(m.group(2))
        except re.error as exc:
            raise ApiError(400, f"Bad regular expression in filter: {exc}") from None
        return m.group(1), lambda value: rx.search(value) is not None
    m = re.fullmatch(r"(\w+)=(.*)", expr)
    if m:
        wanted = m.group(2)
        return m.group(1), lambda value: value == wanted
    raise ApiError(400, f"Unsupported filter {expr!r}: use match(attr,REGEX) or attr=value")
