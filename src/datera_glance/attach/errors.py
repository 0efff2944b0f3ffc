"""The attach room's one exception, and the translation of host failures into it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from oslo_utils import strutils


class AttachError(Exception):
    """The volume could not be attached or detached on this host."""


@contextlib.contextmanager
def host_errors(action: str, secret: str | None = None) -> Iterator[None]:
    """os-brick, privsep and rootwrap failures (``ProcessExecutionError``, ``BrickException``,
    ``OSError``, ...) -> ``AttachError``, with passwords masked out of the message: their own
    types mean nothing to glance."""
    try:
        yield
    except AttachError:
        raise
    except Exception as e:
        text = strutils.mask_password(str(e))
        if secret:
            text = text.replace(secret, "***")
        raise AttachError(f"{action} failed: {text}") from e
