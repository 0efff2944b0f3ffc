"""glance-api's own configuration, read the way glance-api reads it, and the Store built on it.

Options are registered as glance and glance_store register them (``enabled_backends`` is
glance's; the store and driver options come from glance_store, which finds this driver through
its ``glance_store.drivers`` entry point), then ``datera_glance.store.Store(conf, backend)`` is
built and configured as glance_store does. What the commands report is therefore what
glance-api will do with the same files.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from glance_store import backend as legacy_backend
from glance_store import location as glance_location
from glance_store import multi_backend
from oslo_config import cfg

from datera_glance import store as store_module
from datera_glance.attach import Attacher
from datera_glance.cli.errors import CliError
from datera_glance.edf import EdfClient
from datera_glance.store import DRIVER, SCHEME, Store, StoreLocation

LOG = logging.getLogger(__name__)

# glance's own options that decide how the store is set up (glance/common/config.py).
_GLANCE_OPTS = [
    cfg.DictOpt("enabled_backends"),
    cfg.StrOpt("os_hash_algo", default="sha512"),
]


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("glance-api configuration")
    group.add_argument(
        "--config-file",
        action="append",
        default=[],
        metavar="PATH",
        help="glance-api's configuration file (repeatable; default: oslo.config's search "
        "for glance-api.conf, e.g. /etc/glance/glance-api.conf)",
    )
    group.add_argument(
        "--config-dir",
        action="append",
        default=[],
        metavar="DIR",
        help="directory of *.conf files read after the files (repeatable)",
    )
    group.add_argument(
        "--backend",
        metavar="NAME",
        help="the Datera backend of enabled_backends (default: [glance_store] default_backend)",
    )


def load_conf(args: argparse.Namespace) -> cfg.ConfigOpts:
    """A ``ConfigOpts`` parsed from the files, with glance's and glance_store's options."""
    conf = cfg.ConfigOpts()
    conf.register_opts(_GLANCE_OPTS)
    oslo_args: list[str] = []
    for path in args.config_file:
        oslo_args += ["--config-file", path]
    for path in args.config_dir:
        oslo_args += ["--config-dir", path]
    conf(oslo_args, project="glance", prog="glance-api", validate_default_values=True)
    if not conf.config_file and not conf.config_dir:
        raise CliError(
            "no configuration file found", "pass --config-file /etc/glance/glance-api.conf"
        )
    if conf.enabled_backends:
        multi_backend.register_store_opts(conf)
    else:
        legacy_backend.register_opts(conf)
    if LOG.isEnabledFor(logging.DEBUG):
        conf.log_opt_values(LOG, logging.DEBUG)  # secret options print as ****
    return conf


def choose_backend(conf: cfg.ConfigOpts, requested: str | None) -> str | None:
    """The backend group to use, or None for the legacy ``[glance_store]`` group."""
    enabled: dict[str, str] = dict(conf.enabled_backends or {})
    datera = sorted(name for name, kind in enabled.items() if kind == DRIVER)
    if not enabled:
        if requested:
            raise CliError(
                f"--backend {requested}: the configuration has no enabled_backends",
                "drop --backend for a legacy [glance_store] configuration",
            )
        return None
    name = requested or conf.glance_store.default_backend
    if not name:
        raise CliError(
            "no default_backend in [glance_store]",
            f"pass --backend ({', '.join(datera) or 'no Datera backend is enabled'})",
        )
    if enabled.get(name) != DRIVER:
        known = ", ".join(datera) or "none"
        raise CliError(
            f"backend {name!r} is not a Datera backend in enabled_backends",
            f"pass --backend with one of: {known}",
        )
    return name


@dataclass
class BackendTarget:
    """The configured store and what the commands need next to it."""

    conf: cfg.ConfigOpts
    backend: str | None
    store: Store
    _client: EdfClient | None = field(default=None, repr=False)

    @property
    def settings(self) -> store_module.StoreSettings:
        return self.store.settings

    @property
    def hash_algo(self) -> str:
        return str(self.conf.os_hash_algo)

    @property
    def client(self) -> EdfClient:
        """A client of its own on the store's settings (lists, metadata, ACLs)."""
        if self._client is None:
            client = EdfClient(self.settings.client_config())
            try:
                client.ensure_tenant()  # as the Store's first operation: EDF refuses calls
            except BaseException:  # in a missing tenant
                client.close()
                raise
            self._client = client
        return self._client

    def close(self) -> None:
        client, self._client = self._client, None
        try:
            if client is not None:
                client.close()
        finally:
            self.store.close()

    def attacher(self, client: EdfClient) -> Attacher:
        """An attacher sharing the store's attach records (same lock_path and scope)."""
        return Attacher(client, self.settings.attach_settings())

    def uri(self, ai_name: str) -> str:
        return self.settings.url_prefix + ai_name

    def location(self, uri: str) -> Any:
        return glance_location.Location(
            SCHEME, StoreLocation, self.conf, uri=uri, backend=self.backend
        )


def build_store(conf: cfg.ConfigOpts, backend: str | None) -> Store:
    """``Store(conf, backend)``, not yet configured (glance_store's ``_load_multi_store``)."""
    return Store(conf, backend=backend)


@contextlib.contextmanager
def opened(args: argparse.Namespace) -> Iterator[BackendTarget]:
    """The configured store for ``args``; its EDF session is closed at the end."""
    conf = load_conf(args)
    backend = choose_backend(conf, args.backend)
    target = BackendTarget(conf, backend, build_store(conf, backend))
    try:
        target.store.configure(re_raise_bsc=True)
        yield target
    finally:
        target.close()
