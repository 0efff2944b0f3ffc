"""What differs between the glance_store releases the driver supports, adapted in one place.

The support matrix (``./dev matrix``, docs/install) runs the driver under each maintained
OpenStack release's versions; anything that differs between them is bridged here, so the rest
of the code is written against the newest glance_store.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from glance_store import driver, exceptions
from oslo_config import cfg

if TYPE_CHECKING or hasattr(exceptions, "TimeoutError"):
    # glance_store 5.4.0 (2026.1) and newer; glance 33 (2026.2) answers it with 503 on upload
    # and delete (glance/api/v2/image_data.py, images.py).
    from glance_store.exceptions import TimeoutError as StoreTimeoutError
else:

    class StoreTimeoutError(exceptions.GlanceStoreException):
        """Stands in for glance_store's TimeoutError, which older releases lack; their glance
        does not catch it either, so nothing is lost."""

        message = "Timed out: %(message)s"


def backend_options(opts: Sequence[cfg.Opt], backend: str, conf: cfg.ConfigOpts) -> Any:
    """A multistore backend's options. glance_store 5.0 (2025.2) added ``[backend_defaults]``
    (``BackendGroupConfiguration`` looks there for what the backend's section leaves unset);
    before it, the backend's own section is all there is."""
    group_config = getattr(driver, "BackendGroupConfiguration", None)
    if group_config is None:
        return getattr(conf, backend)
    return group_config(opts, backend, conf=conf)


__all__ = ["StoreTimeoutError", "backend_options"]
