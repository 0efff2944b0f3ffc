"""The simulator's HTTP/1.1 server (optionally TLS): threads, connections and sending answers.

It knows nothing of EDF: every request goes to an ``App`` (the ``Gateway``) as (method, path,
query, headers, body bytes) and its ``Response`` is sent as JSON, or the connection closed
without an answer (``Response.drop``, an injected fault).
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

from datera_glance.simulator.routing import Response

LOG = logging.getLogger(__name__)

#: (method, path, query string, headers, body) -> the answer.
App = Callable[[str, str, str, Mapping[str, str], bytes], Response]


class HttpServer(ThreadingHTTPServer):
    # Connection threads are daemons (a forgotten stop() must not hang interpreter exit) but
    # tracked, so stop() can join them after closing their sockets.
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self, addr: tuple[str, int], app: App, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        self.app = app
        self.ssl_context = ssl_context
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
    server: HttpServer
    timeout = 120  # idle keep-alive connections do not live forever
    # Headers and body go out in two writes: with Nagle's algorithm the body waits for the
    # client's delayed ACK of the headers, 40 ms on Linux, on every request.
    disable_nagle_algorithm = True
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
        raw = self._read_body()
        resp = self.server.app(method, unquote(url.path), url.query, self.headers, raw)  # type: ignore[arg-type]
        if resp.drop:
            LOG.info("%s %s -> dropped", method, url.path)
            self.close_connection = True
            return
        self.send_json(resp.status, resp.body, resp.headers)
        elapsed_ms = (time.monotonic() - start) * 1000
        LOG.info("%s %s -> %d (%.1f ms)", method, url.path, resp.status, elapsed_ms)

    def send_json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)
