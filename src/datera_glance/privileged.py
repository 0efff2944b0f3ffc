"""This package's oslo.privsep context: the only code of datera-glance that runs as root.

Started through ``sudo glance-rootwrap`` (the ``datera-privsep`` filter of
``etc/glance/rootwrap.d/images.filters``), with ``CAP_CHOWN`` only. Its entry points check
everything they are given (``attach.devices``).
"""

from __future__ import annotations

from oslo_privsep import capabilities, priv_context

from datera_glance.attach import devices

default = priv_context.PrivContext(
    "datera_glance",
    cfg_section="datera_glance_privileged",
    pypath=__name__ + ".default",
    capabilities=[capabilities.CAP_CHOWN],
)


@default.entrypoint
def lend_device(path: str, rdev: int, uid: int) -> bool:
    """``devices.lend`` as root."""
    return devices.lend(path, rdev, uid)


@default.entrypoint
def give_back_device(path: str, rdev: int, uid: int) -> bool:
    """``devices.give_back`` as root."""
    return devices.give_back(path, rdev, uid)
