"""The streaming copier: image bytes between a stream and a block device, with O_DIRECT.

``Copier.write_stream`` runs a pipeline (``_write``): the calling thread fills page-aligned
buffers from the source, hasher threads and ``depth`` writer threads take them from there.
``Copier.read_range`` (``_read``) keeps ``depth`` reads in flight on reader threads and yields
the bytes in order. Threads hand buffers over through ``queue.SimpleQueue`` only (no executor,
futures or condition broadcasts): at small buffer sizes those hand-offs are most of the cost.
``_device`` opens the device and knows what O_DIRECT needs of it.

The syscalls, the zero scan and the copies into aligned memory live in a core module: the
compiled ``datera_glance._chunkio`` unless ``DATERA_GLANCE_NO_EXTENSIONS=1``, else its
pure-Python twin ``datera_glance._chunkio_py``. ``CORE`` names the default core.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Generator, Iterable
from types import ModuleType
from typing import TYPE_CHECKING

from oslo_utils import units

from datera_glance.chunkio._device import check_buffer_args
from datera_glance.chunkio._read import Reader, SpareBuffer
from datera_glance.chunkio._write import Updatable, Writer
from datera_glance.chunkio.errors import DeviceFull, DirectIOUnsupported, SizeMismatch

if TYPE_CHECKING:
    from datera_glance.chunkio._write import Grow, Source

__all__ = [
    "CORE",
    "Copier",
    "DeviceFull",
    "DirectIOUnsupported",
    "SizeMismatch",
    "available_cores",
    "get_copier",
    "read_range",
    "write_stream",
]

LOG = logging.getLogger(__name__)


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


_compiled: ModuleType | None
_compiled_error: ImportError | None = None
try:
    _compiled = importlib.import_module("datera_glance._chunkio")
    if getattr(_compiled, "CORE_NAME", None) != "compiled":
        raise ImportError(f"{_compiled.__file__} is a stale build; rebuild the extension")
except ImportError as exc:  # not built: the python core still works
    _compiled = None
    _compiled_error = exc

if _compiled is None and _env_flag("DATERA_GLANCE_REQUIRE_EXTENSIONS"):
    raise ImportError(
        "DATERA_GLANCE_REQUIRE_EXTENSIONS=1 but the compiled copier core "
        f"datera_glance._chunkio did not load ({_compiled_error}); build it with "
        "'python setup.py build_ext --inplace' or reinstall the package"
    ) from _compiled_error

#: The default core: ``"compiled"`` or ``"python"``.
CORE: str = (
    "compiled"
    if _compiled is not None and not _env_flag("DATERA_GLANCE_NO_EXTENSIONS")
    else "python"
)
LOG.debug("copier core: %s (compiled available: %s)", CORE, _compiled is not None)


def available_cores() -> tuple[str, ...]:
    """The cores that can be loaded here, compiled first."""
    return ("compiled", "python") if _compiled is not None else ("python",)


class Copier:
    """The streaming copier bound to one core (``"compiled"`` or ``"python"``)."""

    def __init__(self, core: ModuleType) -> None:
        self.core = core
        self.core_name: str = core.CORE_NAME
        self.spare = SpareBuffer(core)  # the buffer of ranges read in one go

    def __repr__(self) -> str:
        return f"Copier({self.core_name!r})"

    def write_stream(
        self,
        source: Source,
        path: str,
        *,
        offset: int = 0,
        size: int | None = None,
        hashers: Iterable[Updatable] = (),
        verifier: Updatable | None = None,
        skip_zeros: bool = False,
        buffer_size: int = 4 * units.Mi,
        depth: int = 2,
        grow: Grow | None = None,
        allow_buffered: bool = False,
    ) -> int:
        """Copy ``source`` to ``path`` at ``offset`` with O_DIRECT; fsync before returning.

        :param source: an object with ``read(n)`` (short reads fine, ``b""`` ends it) or an
            iterable of bytes-like chunks. Never asked for more than ``buffer_size`` at once.
        :param size: the exact byte count expected, or ``None`` if unknown.
        :param hashers: objects with ``update()``, each fed the image bytes on its own thread.
        :param verifier: like a hasher (e.g. glance's signature verifier).
        :param skip_zeros: do not write all-zero 64 KiB blocks (they are still hashed); only
            for a target that reads back zeros where never written.
        :param buffer_size: bytes per aligned buffer, a multiple of 4096.
        :param depth: writes in flight; memory is about ``(depth + 2) * buffer_size``.
        :param grow: ``grow(written) -> path`` when the stream is about to pass the end of the
            device; called with no I/O in flight and the device fsynced and closed; the copier
            reopens the returned path (or the same one for ``None``) and continues.
        :param allow_buffered: use buffered I/O if the path refuses O_DIRECT.
        :returns: the image bytes written.
        :raises SizeMismatch: the source gave more (nothing more is written) or fewer bytes
            than ``size``.
        :raises DeviceFull: the image does not fit and there is no ``grow``.
        :raises DirectIOUnsupported: the path refuses O_DIRECT and not ``allow_buffered``.
        """
        check_buffer_args(buffer_size, depth)
        if offset < 0 or (size is not None and size < 0):
            raise ValueError("offset and size must not be negative")
        consumers = [*hashers, *([verifier] if verifier is not None else [])]
        writer = Writer(
            self.core, path, offset=offset, size=size, grow=grow, allow_buffered=allow_buffered
        )
        return writer.run(
            source, consumers, buffer_size=buffer_size, depth=depth, skip_zeros=skip_zeros
        )

    def read_range(
        self,
        path: str,
        offset: int,
        length: int,
        *,
        buffer_size: int = 4 * units.Mi,
        depth: int = 2,
        allow_buffered: bool = False,
    ) -> Generator[bytes, None, None]:
        """Yield ``bytes`` covering exactly ``[offset, offset + length)`` of ``path``.

        Any alignment; up to ``depth`` reads ahead. The device is opened on the first
        ``next()``; closing the generator early stops the reads and releases everything.

        :raises EOFError: the range runs past the end of the device or file.
        :raises DirectIOUnsupported: the path refuses O_DIRECT and not ``allow_buffered``.
        """
        check_buffer_args(buffer_size, depth)
        if offset < 0 or length < 0:
            raise ValueError("offset and length must not be negative")
        reader = Reader(
            self.core, path, offset, length, spare=self.spare, allow_buffered=allow_buffered
        )
        return reader.run(buffer_size=buffer_size, depth=depth)


_copiers: dict[str, Copier] = {}


def get_copier(core: str | None = None) -> Copier:
    """The copier on ``core`` (``"compiled"``, ``"python"``, or ``None`` for ``CORE``).

    :raises ImportError: ``"compiled"`` was asked for but is not built.
    """
    name = CORE if core is None else core
    copier = _copiers.get(name)
    if copier is not None:
        return copier
    if name == "compiled":
        if _compiled is None:
            raise ImportError(f"the compiled copier core is not available: {_compiled_error}")
        module: ModuleType = _compiled
    elif name == "python":
        # Imported on demand: the twin needs numpy, which a glance-api worker on the compiled
        # core would otherwise load (and start OpenBLAS's thread pool) for nothing.
        module = importlib.import_module("datera_glance._chunkio_py")
    else:
        raise ValueError(f"unknown copier core {name!r} (compiled or python)")
    copier = _copiers[name] = Copier(module)
    return copier


write_stream = get_copier().write_stream
read_range = get_copier().read_range
