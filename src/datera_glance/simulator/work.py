"""Counts of the work behind requests that could grow with the number of stored objects.

Tests inject a ``Work`` into the ``Simulator`` and compare the counts of one request at 10 and
at 1,000 app instances: a cost that grows shows there, not only in a benchmark's timings.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass
class Work:
    serialized: int = 0  # objects written out as JSON for persistence (journal or snapshot)
    written: int = 0  # bytes written to the state files
    rendered: int = 0  # app instances rendered for answers
    scanned: int = 0  # objects examined by listing filters and sorts

    def copy(self) -> Work:
        return dataclasses.replace(self)

    def since(self, before: Work) -> Work:
        """The work done after ``before`` (a ``copy()`` taken earlier)."""
        return Work(
            **{
                f.name: getattr(self, f.name) - getattr(before, f.name)
                for f in dataclasses.fields(self)
            }
        )
