"""A tiny HTTP server on 127.0.0.1 that plays a broken or hostile EDF cluster over a real socket.

The simulator answers like EDF; this one answers however a test script says: a body dripped one
byte at a time, a body far larger than any EDF answer, a redirect. Logins always work, so the
client reaches the scripted call. Used as a context manager; it serves on its own threads.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import ssl
import threading
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from datera_glance.simulator.tls import make_certificate

Script = Callable[[http.server.BaseHTTPRequestHandler], None]


def drip(body: bytes, every: float) -> Script:
    """Send a 200 announcing ``body``'s length, then one byte every ``every`` seconds."""

    def run(handler: http.server.BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        for i in range(len(body)):
            handler.wfile.write(body[i : i + 1])
            handler.wfile.flush()
            time.sleep(every)

    return run


def drip_headers(every: float, lines: int) -> Script:
    """Send a status line, then ``lines`` header lines one byte every ``every`` seconds (each
    socket read is quick, so only a deadline on the whole answer ends the wait), then a body."""

    def run(handler: http.server.BaseHTTPRequestHandler) -> None:
        handler.wfile.write(b"HTTP/1.1 200 OK\r\n")
        handler.wfile.flush()
        for n in range(lines):
            for byte in f"X-Pad-{n}: x\r\n".encode():
                handler.wfile.write(bytes([byte]))
                handler.wfile.flush()
                time.sleep(every)
        body = b'{"data": {}}'
        handler.wfile.write(b"Content-Length: %d\r\n\r\n%s" % (len(body), body))

    return run


def flood(total: int, *, declare: bool = True, chunked: bool = False) -> Script:
    """Send a 200 whose body is ``total`` bytes of JSON-looking filler, written in 1 MiB pieces
    (with its Content-Length, without one, or chunked)."""
    piece = b" " * (1 << 20)

    def run(handler: http.server.BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        if chunked:
            handler.send_header("Transfer-Encoding", "chunked")
        elif declare:
            handler.send_header("Content-Length", str(total))
        handler.end_headers()
        sent = 0
        while sent < total:
            data = piece[: min(len(piece), total - sent)]
            if chunked:
                handler.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            else:
                handler.wfile.write(data)
            sent += len(data)
        if chunked:
            handler.wfile.write(b"0\r\n\r\n")
        if not declare and not chunked:
            handler.close_connection = True

    return run


def gzip_bomb(total: int) -> Script:
    """Send a 200 whose gzip-encoded body is small and unpacks to ``total`` blanks."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    piece = b" " * (1 << 20)
    packed = b"".join(packer.compress(piece) for _ in range(total // len(piece)))
    packed += packer.flush()

    def run(handler: http.server.BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Encoding", "gzip")
        handler.send_header("Content-Length", str(len(packed)))
        handler.end_headers()
        handler.wfile.write(packed)

    return run


def answer(status: int, body: Any, headers: dict[str, str] | None = None) -> Script:
    """Send ``status`` with ``body`` as JSON."""
    data = json.dumps(body).encode()

    def run(handler: http.server.BaseHTTPRequestHandler) -> None:
        handler.send_response(status)
        for key, value in (headers or {}).items():
            handler.send_header(key, value)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    return run


class HostileServer:
    """Serves ``scripts[(METHOD, path)]``; ``PUT /v2.x/login`` answers a session key."""

    def __init__(self, scripts: dict[tuple[str, str], Script], tls_dir: Path | None = None) -> None:
        """``tls_dir``: serve HTTPS with a fresh certificate made there (``ca_file``)."""
        self.scripts = dict(scripts)
        self.requests: list[tuple[str, str]] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                path = self.path.split("?", 1)[0]
                server.requests.append((self.command, path))
                if path.endswith("/login"):
                    answer(200, {"key": "hostile-session-key"})(self)
                    return
                script = server.scripts.get((self.command, path))
                if script is None:
                    answer(404, {"name": "NotFoundError", "message": "no script"})(self)
                    return
                # A client that gives up (as it should) closes the socket under the script.
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    script(self)

            do_GET = do_PUT = do_POST = do_DELETE = _serve

        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.ca_file: str | None = None
        if tls_dir is not None:
            cert, key = make_certificate(tls_dir)
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(cert, key)
            self._httpd.socket = context.wrap_socket(self._httpd.socket, server_side=True)
            self.ca_file = str(cert)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def __enter__(self) -> HostileServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()
