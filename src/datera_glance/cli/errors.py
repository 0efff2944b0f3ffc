"""Errors of the command line: every failure becomes one line naming what to fix (exit 1).

The traceback is printed only with ``-v``. This is the one place where the exceptions of the
layers below (oslo.config, glance_store, the EDF client, the copier, the OS) are translated for
people.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
from collections.abc import Callable, Iterator

from glance_store import exceptions as store_exc
from oslo_config import cfg

from datera_glance import chunkio
from datera_glance.edf import errors as edf

LOG = logging.getLogger(__name__)


class CliError(Exception):
    """A problem the operator can fix; ``fix`` says how."""

    def __init__(self, message: str, fix: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix

    def __str__(self) -> str:
        return f"{self.message} ({self.fix})" if self.fix else self.message


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _edf_fix(exc: edf.EdfError) -> str:
    if isinstance(exc, edf.AuthError):
        return "check datera_san_login and datera_san_password"
    if isinstance(exc, edf.ConnectionFailed):
        return "check datera_san_ip, datera_san_port, datera_ssl and that the cluster is up"
    if isinstance(exc, edf.PermissionDenied):
        return "the datera_san_login user lacks the rights for this tenant"
    if isinstance(exc, edf.InsufficientCapacity):
        return "free capacity on the cluster"
    if isinstance(exc, edf.ServiceUnavailable | edf.Timeout):
        return "the cluster is busy or degraded; retry later"
    if isinstance(exc, edf.UnexpectedResponse):
        return "check that datera_san_ip and datera_san_port reach EDF itself, not a proxy"
    return ""


def explain(exc: BaseException) -> CliError:
    """The one-line message and fix for ``exc``."""
    for link in _chain(exc):
        if isinstance(link, CliError):
            return link
        if isinstance(link, edf.EdfError):
            return CliError(f"Datera EDF: {link}", _edf_fix(link))
        if isinstance(link, chunkio.DirectIOUnsupported):
            return CliError(str(link), "the device must accept O_DIRECT")
    if isinstance(exc, cfg.ConfigFilesNotFoundError | cfg.ConfigDirNotFoundError):
        return CliError(str(exc), "pass --config-file /etc/glance/glance-api.conf")
    if isinstance(exc, cfg.Error):
        return CliError(f"configuration: {exc}", "correct the configuration file")
    if isinstance(exc, store_exc.BadStoreConfiguration):
        return CliError(str(exc), "correct the backend's options in the configuration file")
    if isinstance(exc, store_exc.NotFound):
        return CliError(str(exc), "datera-glance ls lists the images")
    if isinstance(exc, store_exc.GlanceStoreException):
        return CliError(str(exc))
    if isinstance(exc, OSError):
        where = f": {exc.filename}" if exc.filename else ""
        return CliError(f"{exc.strerror or exc}{where}")
    return CliError(f"{type(exc).__name__}: {exc}", "run with -v for the traceback")


def guarded(run: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run a subcommand; print any failure as one line (and the traceback with -v)."""
    try:
        return run(args)
    except BrokenPipeError:  # e.g. `datera-glance ls | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 1
    except Exception as exc:
        if getattr(args, "verbose", False):
            traceback.print_exc(file=sys.stderr)
        print(f"error: {explain(exc)}", file=sys.stderr)
        return 1
