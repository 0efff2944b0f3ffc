"""What the copier raises besides plain ``OSError``s of the device."""

from __future__ import annotations

__all__ = ["DeviceFull", "DirectIOUnsupported", "SizeMismatch"]


class SizeMismatch(ValueError):
    """The source gave more or fewer bytes than the announced ``size``."""


class DeviceFull(OSError):
    """The image does not fit: ENOSPC, or running past the end of the device without ``grow``."""


class DirectIOUnsupported(OSError):
    """The path refuses O_DIRECT (EINVAL) and buffered I/O was not allowed."""
