"""The simulator's HTTP(S) server, fault injection and the ``Simulator`` facade."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from datera_glance.simulator.api import (
    ERROR_NAMES,
    ApiError,
    Cluster,
    Request,
    Response,
    error_body,
)
from datera_glance.simulator.backends import Runner, make_backend, run_command
from datera_glance.simulator.model import GiB
from datera_glance.simulator.tls import make_certificate

LOG = logging.getLogger(__name__)

_VERSION_RE = re.compile(r"^/v(\d+\.\d+)(/.*)?$")


@dataclass
class Fault:
    """One injected fault. ``path`` is a regex searched in the path after ``/v2.x`` (e.g.
    ``/app_instances``, ``^/login$``); paths without a version prefix are matched whole."""

    method: str | None  # None or "*": any method
    path: re.Pattern[str]
    status: int | None = None
    drop: bool = False
    delay: float | None = None
    count: int | None = 1  # None: every matching request
    skip: int = 0
    after: bool = False  # drop/status after the request took effect (its answer is lost)
    retry_after: float | None = None
    name: str | None = None
    message: str | None = None

    def matches(self, method: str, path: str) -> bool:
        if self.method not in (None, "*") and self.method.upper() != method:
            return False
        return self.path.search(path) is not None

    def to_json(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "path": self.path.pattern,
            "status": self.status,
            "drop": self.drop,
            "delay": self.delay,
            "count": self.count,
            "skip": self.skip,
            "after": self.after,
            "retry_after": self.retry_after,
        }


class _Dropped(Exception):
    """Close the connection without answering."""


class _Server(ThreadingHTTPServer):
    # Connection threads are daemons (a forgotten stop() must not hang interpreter exit) but
    # tracked, so stop() can join them after closing their sockets.
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr: tuple[str, int], sim: Simulator) -> None:
        self.sim = sim
        self.ssl_context: ssl.SSLContext | None = None
        self.conns: set[socket.socket] = set()
        self.conns_lock = threading.Lock()
        self.threads: list[threading.Thread] = []
        super().__init__(addr, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        t = threading.Thread(
            target=self.process_request_thread, args=(request, client_address), daemon=True
        )
        with self.conns_lock:
            self.threads = [x for x in self.threads if x.is_alive()]
            self.threads.append(t)
        t.start()

    def join_threads(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self.conns_lock:
            threads = list(self.threads)
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients hanging up (or refusing our certificate) is normal here: no tracebacks.
        LOG.debug("connection from %s ended with an error", client_address, exc_info=True)

    def close_connections(self) -> None:
        with self.conns_lock:
            conns = list(self.conns)
        for c in conns:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    timeout = 120  # idle keep-alive connections do not live forever
    server_version = "EDF-simulator"

    def setup(self) -> None:
        conns = self.server.conns
        with self.server.conns_lock:
            conns.add(self.request)
        ctx = self.server.ssl_context
        if ctx is not None:
            raw = self.request
            raw.settimeout(self.timeout)
            try:
                # Handshake here, on the connection's own thread, not in the accept loop.
                self.request = ctx.wrap_socket(raw, server_side=True)
            finally:
                with self.server.conns_lock:
                    conns.discard(raw)
            with self.server.conns_lock:
                conns.add(self.request)
        super().setup()

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            with self.server.conns_lock:
                self.server.conns.discard(self.request)
            if self.server.ssl_context is not None:
                # socketserver closes the plain socket it accepted, which the TLS wrapper
                # has taken over: close the wrapper ourselves.
                with contextlib.suppress(OSError):
                    self.request.close()

    def log_message(self, format: str, *args: Any) -> None:
        LOG.debug("http: " + format, *args)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _handle(self, method: str) -> None:
        start = time.monotonic()
        url = urlsplit(self.path)
        path = unquote(url.path)
        raw = self._read_body()
        try:
            status = self.server.sim._serve(self, method, path, url.query, raw)
        except _Dropped:
            LOG.info("%s %s -> dropped", method, url.path)
            self.close_connection = True
            return
        LOG.info(
            "%s %s -> %d (%.1f ms)", method, url.path, status, (time.monotonic() - start) * 1000
        )

    def send_json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)


def _parse_body(raw: bytes, content_type: str) -> Any:
    if not raw.strip():
        return None
    if "application/x-www-form-urlencoded" in content_type:
        # The Go SDK logs in with a form-encoded body.
        return dict(parse_qsl(raw.decode()))
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"Request body is not valid JSON: {exc}") from None


class Simulator:
    """An EDF cluster on 127.0.0.1: REST v2.1/v2.2 over HTTP(S), volumes in sparse files.

    :param data_dir: state file, volume files and ``tls/`` live here; kept across restarts.
    :param backend: ``"file"`` (``device_path`` is the sparse file) or ``"loop"`` (a loop
        device while online; needs root).
    :param run: runs ``losetup``; injectable for tests.
    :param clock: for session expiry and the optional ``available_delay``.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        tls: bool = False,
        backend: str = "file",
        username: str = "admin",
        password: str = "password",
        capacity_bytes: int = 100 * GiB,
        api_versions: Iterable[str] = ("2.1", "2.2"),
        sw_version: str = "3.2.5.0",
        session_ttl: float = 900.0,
        available_delay: float = 0.0,
        run: Runner = run_command,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.host = host
        self.port = port
        self.tls = tls
        self.backend_name = backend
        self.api_versions = tuple(api_versions)
        for v in self.api_versions:
            if v not in ("2.1", "2.2"):
                raise ValueError(f"unsupported API version {v!r} (2.1, 2.2)")
        self.ca_file: str | None = None
        self._sleep = sleep
        self.cluster = Cluster(
            self.data_dir,
            backend=make_backend(backend, run),
            username=username,
            password=password,
            capacity_bytes=capacity_bytes,
            api_versions=self.api_versions,
            sw_version=sw_version,
            session_ttl=session_ttl,
            available_delay=available_delay,
            clock=clock,
        )
        self._faults: list[Fault] = []
        self._faults_lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle -------------------------------------------------------------------

    @property
    def url(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{self.host}:{self.port}"

    def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("simulator already started")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.cluster.load()
        try:
            server = _Server((self.host, self.port), self)
        except OSError:
            self.cluster.detach_all()
            raise
        if self.tls:
            cert, key = make_certificate(self.data_dir / "tls", self.host)
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(cert, key)
            server.ssl_context = ctx
            self.ca_file = str(cert)
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
            "EDF simulator listening on %s (backend %s, data %s)",
            self.url,
            self.backend_name,
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
        self.cluster.detach_all()
        with self.cluster.lock:
            self.cluster.sessions.clear()
            self.cluster.save()
        self.cluster.flush()

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

    # ---- Python control API (same as /_sim/) -----------------------------------------

    def state(self) -> dict[str, Any]:
        out = self.cluster.sim_state()
        with self._faults_lock:
            out["faults"] = [f.to_json() for f in self._faults]
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
        if status is None and not drop and delay is None:
            raise ValueError("a fault needs status, drop or delay")
        if status is not None and not 400 <= status <= 599:
            raise ValueError("status must be 4xx or 5xx")
        if count is not None and count < 1:
            raise ValueError("count must be at least 1 (or null: every request)")
        if skip < 0 or (delay is not None and delay < 0):
            raise ValueError("skip and delay must not be negative")
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
        with self._faults_lock:
            self._faults.append(fault)

    def clear_faults(self) -> None:
        with self._faults_lock:
            self._faults.clear()

    def expire_sessions(self) -> None:
        self.cluster.expire_sessions()

    def set_capacity(self, nbytes: int) -> None:
        self.cluster.set_capacity(nbytes)

    # ---- request handling ------------------------------------------------------------

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self._faults_lock:
            for fault in self._faults:
                if not fault.matches(method, path):
                    continue
                if fault.skip > 0:
                    fault.skip -= 1
                    continue
                if fault.count is not None:
                    fault.count -= 1
                    if fault.count <= 0:
                        self._faults.remove(fault)
                return fault
        return None

    def _serve(self, h: _Handler, method: str, path: str, query: str, raw: bytes) -> int:
        if path.startswith("/_sim/") or path == "/_sim":
            return self._serve_sim(h, method, path, raw)
        m = _VERSION_RE.match(path)
        version = m.group(1) if m else ""
        sub = (m.group(2) or "/") if m else path
        fault = self._take_fault(method, sub)
        if fault is not None and fault.delay:
            self._sleep(fault.delay)
        try:
            if fault is not None and not fault.after:
                self._apply_fault(h, fault, version, sub, method)
            status, body, headers = self._dispatch(h, method, version, sub, query, raw)
            if fault is not None and fault.after:
                self._apply_fault(h, fault, version, sub, method)
        except _Answered as answered:
            return answered.status
        h.send_json(status, body, headers)
        return status

    def _apply_fault(self, h: _Handler, fault: Fault, version: str, sub: str, method: str) -> None:
        if fault.drop:
            raise _Dropped()
        if fault.status is None:
            return
        status = fault.status
        name = fault.name or ERROR_NAMES.get(status, "InternalError")
        message = fault.message or f"Injected fault: HTTP {status}"
        headers = {}
        if fault.retry_after is not None:
            headers["Retry-After"] = (
                str(int(fault.retry_after))
                if float(fault.retry_after).is_integer()
                else str(fault.retry_after)
            )
        body = error_body(status, name, message, [], version=version, path=sub, op=method)
        h.send_json(status, body, headers)
        raise _Answered(status)

    def _dispatch(
        self, h: _Handler, method: str, version: str, sub: str, query: str, raw: bytes
    ) -> tuple[int, Any, dict[str, str]]:
        try:
            if not version:
                if sub == "/api_versions" and method == "GET":
                    return 200, {"api_versions": [f"v{v}" for v in self.api_versions]}, {}
                raise ApiError(404, f"No route for {sub}", name="InvalidRouteError")
            if version not in self.api_versions:
                raise ApiError(
                    404, f"API version v{version} is not supported", name="InvalidRouteError"
                )
            body = _parse_body(raw, h.headers.get("Content-Type") or "")
            req = Request(
                method=method,
                version=version,
                path=sub,
                query=dict(parse_qsl(query, keep_blank_values=True)),
                headers=h.headers,  # type: ignore[arg-type]
                body=body,
            )
            resp: Response = self.cluster.handle(req)
            return resp.status, resp.body, resp.headers
        except ApiError as err:
            body = error_body(
                err.status, err.name, err.message, err.errors, version=version, path=sub, op=method
            )
            return err.status, body, {}
        except Exception as exc:
            LOG.exception("simulator error on %s %s", method, sub)
            body = error_body(
                500,
                "InternalError",
                f"Simulator error: {exc}",
                [],
                version=version,
                path=sub,
                op=method,
            )
            return 500, body, {}

    def _serve_sim(self, h: _Handler, method: str, path: str, raw: bytes) -> int:
        try:
            body = _parse_body(raw, "application/json")
            status, out = self._sim_route(method, path, body)
        except (ValueError, TypeError, KeyError, re.error) as exc:
            status, out = 400, {"message": f"bad /_sim request: {exc}"}
        except ApiError as err:
            status, out = err.status, {"message": err.message}
        h.send_json(status, out)
        return status

    def _sim_route(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        if (method, path) == ("GET", "/_sim/state"):
            return 200, self.state()
        if (method, path) == ("POST", "/_sim/faults"):
            if not isinstance(body, dict):
                raise ValueError("body must be an object")
            allowed = {
                "method",
                "path",
                "status",
                "drop",
                "delay",
                "count",
                "skip",
                "after",
                "retry_after",
                "name",
                "message",
            }
            unknown = set(body) - allowed
            if unknown:
                raise ValueError(f"unknown fault fields {sorted(unknown)}")
            self.add_fault(
                body.get("method"),
                body["path"],
                **{k: v for k, v in body.items() if k not in ("method", "path")},
            )
            return 201, {"faults": self.state()["faults"]}
        if (method, path) == ("DELETE", "/_sim/faults"):
            self.clear_faults()
            return 200, {"faults": []}
        if (method, path) == ("POST", "/_sim/sessions/expire"):
            self.expire_sessions()
            return 200, {"sessions": 0}
        if (method, path) == ("PUT", "/_sim/capacity"):
            if not isinstance(body, dict) or not isinstance(body.get("bytes"), int):
                raise ValueError('body must be {"bytes": <int>}')
            self.set_capacity(body["bytes"])
            return 200, self.state()["capacity"]
        raise ApiError(404, f"no simulator control {method} {path}")


class _Answered(Exception):
    """A fault already sent its answer."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status
