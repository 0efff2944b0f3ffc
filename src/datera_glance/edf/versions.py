"""What each EDF REST API version does: the one table the client, the option and the simulator
read.

Every place that behaves differently per API version asks an ``ApiVersion`` for a capability;
none compares version strings. A new version is one new row in ``VERSIONS`` (every field is
required, so the row must say what the version does). Evidence: EDF's v2.1 ``/api`` schema
(no ``offset``/``limit``, no ``force``), Datera's SDK (v2.2 paging) and Cinder driver (v2.2
initiator ``force``, DAT-15931).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["AUTO", "NAMES", "NEGOTIATION_ORDER", "VERSIONS", "ApiVersion", "version"]


@dataclass(frozen=True)
class ApiVersion:
    """One EDF REST API version and what the driver and the simulator do differently on it."""

    #: ``"2.2"``: the URL prefix is ``/v2.2``.
    name: str
    #: Listings page with ``offset``/``limit`` and answer ``metadata`` with ``total_count``;
    #: False: one GET returns them all, ``metadata`` is ``{"total": n}``.
    pages: bool
    #: Initiators are tenant-scoped: one seen from a parent tenant needs an in-tenant copy,
    #: which ``POST /initiators`` accepts only with ``force``; False: any visible initiator
    #: will do and the schema rejects ``force``.
    tenant_initiators: bool


#: Oldest first; the simulator serves them in this order.
VERSIONS: tuple[ApiVersion, ...] = (
    ApiVersion("2.1", pages=False, tenant_initiators=False),
    ApiVersion("2.2", pages=True, tenant_initiators=True),
)
NAMES: tuple[str, ...] = tuple(v.name for v in VERSIONS)
#: What ``auto`` tries at login: the newest first.
NEGOTIATION_ORDER: tuple[str, ...] = tuple(reversed(NAMES))
#: The ``api_version`` setting meaning "negotiate at first login".
AUTO = "auto"

_BY_NAME = {v.name: v for v in VERSIONS}


def version(name: str) -> ApiVersion:
    """The table's row for ``name`` (``"2.2"``).

    :raises ValueError: not a version in the table (the message lists them).
    """
    try:
        return _BY_NAME[name]
    except KeyError:
        raise ValueError(f"unsupported EDF API version {name!r} ({', '.join(NAMES)})") from None
