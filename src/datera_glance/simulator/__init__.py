"""An EDF (Datera Elastic Data Fabric) REST simulator: v2.1 and v2.2 over HTTP(S), volumes as
sparse files or loop devices, fault injection under ``/_sim/``.

See ``README.md`` here (layout, how to add an endpoint), ``docs/interfaces.md`` ("Simulator")
and ``datera-glance simulator --help``.
"""

from __future__ import annotations

from oslo_utils import units

from datera_glance.simulator.facade import SimControl, SimControlError, Simulator
from datera_glance.simulator.faults import Fault

#: Kept for importers not yet on ``oslo_utils.units`` (use ``units.Gi``).
GiB = units.Gi

__all__ = ["Fault", "GiB", "SimControl", "SimControlError", "Simulator"]
