"""``Simulator``: starts the cluster and its HTTP server, and offers the control API (the same
as ``/_sim/``) in Python; ``SimControl``: that API over HTTP, for a simulator in another
process."""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import Any

from oslo_utils import units

from datera_glance.edf import versions
from datera_glance.simulator import controls
from datera_glance.simulator.cluster import Cluster
from datera_glance.simulator.faults import Fault, Faults
from datera_glance.simulator.gateway import Gateway
from datera_glance.simulator.handlers import app_instances
from datera_glance.simulator.iscsi import LioTargets
from datera_glance.simulator.media import Runner, make_media, run_command
from datera_glance.simulator.persistence import ensure_data_dir, write_file_atomic
from datera_glance.simulator.server import HttpServer
from datera_glance.simulator.tls import make_certificate
from datera_glance.simulator.work import Work

LOG = logging.getLogger(__name__)

#: In the data directory: the token ``/_sim/`` requests send as ``Sim-Token`` (0600, new at
#: every start).
CONTROL_TOKEN_FILE = "control-token"  # noqa: S105 (a file name)


class Simulator:
    """An EDF cluster on 127.0.0.1: REST v2.1/v2.2 over HTTP(S), volumes in sparse files.

    :param data_dir: state file, volume files and ``tls/`` live here; kept across restarts.
    :param media: where volumes live: ``"file"`` (``device_path`` is the sparse file) or
        ``"loop"`` (a loop device while online; needs root).
    :param run: runs ``losetup``; injectable for tests.
    :param clock: for session expiry and the optional ``available_delay``.
    :param work: counts work that could grow with the number of objects (tests read it).
    :param iscsi: serve each online storage instance as a real iSCSI target (root; the
        kernel's LIO, see ``simulator.iscsi``); a ``LioTargets`` chooses its portals.
    :param control_token: what ``/_sim/`` requests must send as ``Sim-Token`` (an EDF session
        key as ``Auth-Token`` works too); random by default, written to
        ``DATA_DIR/control-token`` at start.

    ``username``/``password`` default to ``admin``/``password`` for tests; the command line
    (the daemon) never uses that default.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        tls: bool = False,
        media: str = "file",
        username: str = "admin",
        password: str = "password",
        capacity_bytes: int = 100 * units.Gi,
        api_versions: Iterable[str] = versions.NAMES,
        sw_version: str = "3.2.5.0",
        session_ttl: float = 900.0,
        available_delay: float = 0.0,
        run: Runner = run_command,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        work: Work | None = None,
        control_token: str | None = None,
        iscsi: bool | LioTargets = False,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.control_token = control_token or secrets.token_urlsafe(32)
        #: the iSCSI targets (``stop_portal``/``start_portal``), or None
        self.iscsi: LioTargets | None = (
            iscsi if isinstance(iscsi, LioTargets) else LioTargets(run=run) if iscsi else None
        )
        self.host = host
        self.port = port
        self.tls = tls
        self.media_name = media
        self.api_versions = tuple(api_versions)
        for v in self.api_versions:
            versions.version(v)  # ValueError for a version the table does not have
        self.ca_file: str | None = None
        self.cluster = Cluster(
            self.data_dir,
            media=make_media(self.media_name, run),
            username=username,
            password=password,
            capacity_bytes=capacity_bytes,
            api_versions=self.api_versions,
            sw_version=sw_version,
            session_ttl=session_ttl,
            available_delay=available_delay,
            clock=clock,
            work=work,
            targets=self.iscsi,
        )
        self.work = self.cluster.work
        self.faults = Faults()
        self._gateway = Gateway(self.cluster, self.faults, self, sleep, self.control_token)
        self._server: HttpServer | None = None
        self._thread: threading.Thread | None = None
        self._loaded = False  # the state is in memory: stop() saves it

    # ---- lifecycle -------------------------------------------------------------------

    @property
    def url(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{self.host}:{self.port}"

    def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("simulator already started")
        ensure_data_dir(self.data_dir)
        token_file = self.data_dir / CONTROL_TOKEN_FILE
        write_file_atomic(token_file, self.control_token.encode() + b"\n")
        ctx = None
        if self.tls:
            cert, key = make_certificate(self.data_dir / "tls", self.host)
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(cert, key)
            self.ca_file = str(cert)
        if self.iscsi is not None:
            self.iscsi.prepare()
        self.cluster.load()
        self._loaded = True
        try:
            server = HttpServer((self.host, self.port), self._gateway, ctx)
        except OSError:
            self.cluster.detach_all()
            raise
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"edf-sim-{self.port}",
            daemon=True,
        )
        self._thread.start()
        LOG.info(
            "EDF simulator listening on %s (media %s, data %s)",
            self.url,
            self.media_name,
            self.data_dir,
        )

    def stop(self) -> None:
        """Stop serving, close client connections, detach every device the simulator made."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
            server.close_connections()
            server.join_threads(timeout=10)
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        if not self._loaded:
            return  # never started (or refused its data directory): nothing to save
        self._loaded = False
        self.cluster.detach_all()
        with self.cluster.lock:
            self.cluster.sessions.clear()
        self.cluster.compact()

    def __enter__(self) -> Simulator:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def control(self) -> SimControl:
        """This simulator's ``/_sim/`` over HTTP (to test that path; Python calls need none)."""
        return SimControl(self.url, self.control_token, ca_file=self.ca_file)

    # ---- Python control API (same as /_sim/) -----------------------------------------

    def state(self) -> dict[str, Any]:
        out = controls.cluster_state(self.cluster)
        out["faults"] = self.faults.to_json()
        return out

    def add_fault(
        self,
        method: str | None,
        path: str,
        *,
        status: int | None = None,
        drop: bool = False,
        delay: float | None = None,
        count: int | None = 1,
        skip: int = 0,
        after: bool = False,
        retry_after: float | None = None,
        name: str | None = None,
        message: str | None = None,
    ) -> None:
        """Inject a fault for requests whose path (after ``/v2.x``) matches the regex ``path``.

        The first ``skip`` matching requests pass; the next ``count`` (``None``: all) get the
        fault: ``delay`` seconds of sleep, then an EDF error with ``status``, or a dropped
        connection. With ``after=True`` the request takes effect before its answer is lost.
        """
        fault = Fault(
            method=method,
            path=re.compile(path),
            status=status,
            drop=drop,
            delay=delay,
            count=count,
            skip=skip,
            after=after,
            retry_after=retry_after,
            name=name,
            message=message,
        )
        self.faults.add(fault)

    def clear_faults(self) -> None:
        self.faults.clear()

    def expire_sessions(self) -> None:
        with self.cluster.lock:
            self.cluster.sessions.clear()

    def set_capacity(self, nbytes: int) -> None:
        self.cluster.set_capacity(nbytes)

    def seed_app_instances(
        self,
        count: int,
        *,
        tenant: str = "/root",
        prefix: str = "seed-",
        size: float = 1,
        admin_state: str = "offline",
    ) -> list[str]:
        """Fill ``tenant`` with ``count`` app instances (``prefix0``, ``prefix1``, ...) as
        ``POST /app_instances`` makes them, without the HTTP round trips; return their ids.

        For benchmarks of large tenants: 10,000 take seconds, not the hour of REST calls. The
        capacity check applies (``set_capacity`` first: 10,000 x 1 GiB needs 10 TiB).
        """
        return app_instances.seed(
            self.cluster, count, tenant=tenant, prefix=prefix, size=size, admin_state=admin_state
        )


class SimControlError(RuntimeError):
    """A ``/_sim/`` request was refused (its status and the simulator's message)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status


class SimControl:
    """The ``Simulator``'s control API over HTTP (``/_sim/``, with its token): for a simulator
    in another process, e.g. ``datera-glance simulator`` (its token is in
    ``DATA_DIR/control-token``, readable by the simulator's user only).

    The methods take the arguments of ``Simulator``'s of the same name; a refused request
    raises ``SimControlError``.
    """

    def __init__(
        self, url: str, token: str, *, ca_file: str | None = None, timeout: float = 30.0
    ) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._token = token
        handlers: list[urllib.request.BaseHandler] = [urllib.request.ProxyHandler({})]
        if ca_file:
            context = ssl.create_default_context(cafile=ca_file)
            handlers.append(urllib.request.HTTPSHandler(context=context))
        self._opener = urllib.request.build_opener(*handlers)

    @classmethod
    def for_data_dir(
        cls, url: str, data_dir: str | os.PathLike[str], *, ca_file: str | None = None
    ) -> SimControl:
        """The control of the simulator serving ``url`` from ``data_dir`` (reads its token)."""
        token = (Path(data_dir) / CONTROL_TOKEN_FILE).read_text().strip()
        return cls(url, token, ca_file=ca_file)

    def state(self) -> dict[str, Any]:
        state: dict[str, Any] = self._call("GET", "/_sim/state")
        return state

    def add_fault(self, method: str | None, path: str, **options: Any) -> None:
        """``options``: ``status``, ``drop``, ``delay``, ``count``, ``skip``, ``after``,
        ``retry_after``, ``name``, ``message``, as ``Simulator.add_fault``."""
        self._call("POST", "/_sim/faults", {"method": method, "path": path, **options})

    def clear_faults(self) -> None:
        self._call("DELETE", "/_sim/faults")

    def expire_sessions(self) -> None:
        self._call("POST", "/_sim/sessions/expire")

    def set_capacity(self, nbytes: int) -> None:
        self._call("PUT", "/_sim/capacity", {"bytes": nbytes})

    def seed_app_instances(self, count: int, **options: Any) -> list[str]:
        """``options``: ``tenant``, ``prefix``, ``size``, ``admin_state``."""
        ids: list[str] = self._call("POST", "/_sim/app_instances", {"count": count, **options})[
            "ids"
        ]
        return ids

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Sim-Token": self._token, "Content-Type": "application/json"}
        if not self.url.startswith(("http://", "https://")):
            raise ValueError(f"not an http(s) URL: {self.url!r}")
        req = urllib.request.Request(self.url + path, data=data, headers=headers, method=method)
        try:
            with self._opener.open(req, timeout=self.timeout) as resp:
                return json.load(resp)
        except urllib.error.HTTPError as exc:
            with exc:
                try:
                    message = json.load(exc).get("message", "")
                except (ValueError, AttributeError):
                    message = str(exc.reason)
            raise SimControlError(exc.code, f"{method} {path}: {message}") from None
