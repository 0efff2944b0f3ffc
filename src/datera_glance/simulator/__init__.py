"""An EDF (Datera Elastic Data Fabric) REST simulator: v2.1 and v2.2 over HTTP(S), volumes as
sparse files or loop devices, fault injection under ``/_sim/``.

See ``docs/interfaces.md`` ("Simulator") and ``datera-glance simulator --help``.
"""

from __future__ import annotations

from datera_glance.simulator.model import GiB
from datera_glance.simulator.server import Fault, Simulator

__all__ = ["Fault", "GiB", "Simulator"]
