"""Which EDF product versions this driver supports, and what it says about the others.

The driver's version table (Datera's, for the original glance driver this one replaces) names
driver 1.0.0 for Datera product versions 2.1.x and 2.2.x. Later products keep both REST API
versions the driver speaks; the simulator and the suite cover 3.2.x (the simulator's default)
and 3.3.x (the first with ecosystem data). Anything else is unknown: the driver works with it
as with the others, and says so once (a warning, never a refusal).
"""

from __future__ import annotations

import enum

#: (major, minor) product lines named by the driver's version table.
SUPPORTED: tuple[tuple[int, int], ...] = ((2, 1), (2, 2))
#: Lines the simulator and the test suite cover although the table does not list them.
TESTED: tuple[tuple[int, int], ...] = ((3, 2), (3, 3))


class Support(enum.Enum):
    SUPPORTED = "supported"
    TESTED = "tested, not in the version table"
    UNKNOWN = "unknown to this driver"


def support_of(version: tuple[int, ...]) -> Support:
    """The verdict for a product version as ``System.version_tuple`` gives it."""
    line = tuple(version[:2])
    if line in SUPPORTED:
        return Support.SUPPORTED
    if line in TESTED:
        return Support.TESTED
    return Support.UNKNOWN


def lines(versions: tuple[tuple[int, int], ...]) -> str:
    """``((2, 1), (2, 2))`` -> ``2.1.x, 2.2.x``."""
    return ", ".join(f"{major}.{minor}.x" for major, minor in versions)
