"""A small client for glance's Images API v2 (no Keystone), on ``http.client``.

Plain ``http.client`` rather than requests: uploads need exact control over the wire (a
Content-Length or chunked body, a body cut off midway, a lying size header), and downloads are
streamed with large reads.
"""

from __future__ import annotations

import http.client
import json
import time
import urllib.parse
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from oslo_utils import units


class Readable(Protocol):
    def read(self, n: int, /) -> bytes: ...


Body = bytes | Readable | Iterable[bytes]
Progress = Callable[[int], None]


class GlanceError(RuntimeError):
    """An unexpected HTTP status from glance-api."""

    def __init__(self, method: str, path: str, status: int, text: str) -> None:
        super().__init__(f"{method} {path}: HTTP {status}: {text[:500]}")
        self.status = status
        self.text = text


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    headers: dict[str, str]

    @property
    def text(self) -> str:
        return self.body.decode(errors="replace")


def _pieces(body: Body, piece: int) -> Iterator[bytes]:
    if isinstance(body, bytes | bytearray | memoryview):
        view = memoryview(body)
        for start in range(0, len(view), piece):
            yield bytes(view[start : start + piece])
    elif hasattr(body, "read"):
        while data := body.read(piece):
            yield data
    else:
        yield from body


class GlanceClient:
    """The calls the e2e tests and the demo make against one glance-api.

    :param url: e.g. ``http://127.0.0.1:9292``
    :param timeout: socket timeout per operation, in seconds
    """

    def __init__(self, url: str, *, timeout: float = 600.0) -> None:
        parsed = urllib.parse.urlsplit(url)
        self.host = parsed.hostname or "127.0.0.1"
        self.port = parsed.port or 80
        self.timeout = timeout

    def connect(self) -> http.client.HTTPConnection:
        """A new connection (glance-api closes each after one request)."""
        return http.client.HTTPConnection(
            self.host, self.port, timeout=self.timeout, blocksize=units.Mi
        )

    def request(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> Reply:
        conn = self.connect()
        try:
            hdrs = dict(headers or {})
            data = None
            if body is not None:
                data = json.dumps(body).encode()
                hdrs.setdefault("Content-Type", "application/json")
            conn.request(method, path, body=data, headers=hdrs)
            resp = conn.getresponse()
            return Reply(resp.status, resp.read(), dict(resp.getheaders()))
        finally:
            conn.close()

    def _json(self, method: str, path: str, body: Any = None, expect: int = 200) -> Any:
        reply = self.request(method, path, body)
        if reply.status != expect:
            raise GlanceError(method, path, reply.status, reply.text)
        return json.loads(reply.text) if reply.text else None

    def create_image(
        self, name: str, *, disk_format: str = "raw", container_format: str = "bare", **props: Any
    ) -> dict[str, Any]:
        body = {"name": name, "disk_format": disk_format, "container_format": container_format}
        image: dict[str, Any] = self._json("POST", "/v2/images", {**body, **props}, expect=201)
        return image

    def get_image(self, image_id: str) -> dict[str, Any]:
        image: dict[str, Any] = self._json("GET", f"/v2/images/{image_id}")
        return image

    def delete_image(self, image_id: str) -> int:
        """DELETE; returns the status (204, or 404 when it is already gone)."""
        return self.request("DELETE", f"/v2/images/{image_id}").status

    def stores(self) -> list[dict[str, Any]]:
        stores: list[dict[str, Any]] = self._json("GET", "/v2/info/stores")["stores"]
        return stores

    def upload(
        self,
        image_id: str,
        body: Body,
        *,
        size: int | None = None,
        target: str = "file",
        headers: dict[str, str] | None = None,
        progress: Progress | None = None,
        stop_after: int | None = None,
        piece: int = units.Mi,
    ) -> Reply:
        """PUT the image data (``target="stage"`` for interoperable import).

        :param size: sent as Content-Length; ``None`` sends a chunked body with no size
        :param stop_after: close the connection after sending this many bytes (client abort);
            the reply's status is then 0
        """
        path = f"/v2/images/{image_id}/{target}"
        conn = self.connect()
        try:
            conn.putrequest("PUT", path, skip_accept_encoding=True)
            conn.putheader("Content-Type", "application/octet-stream")
            for key, value in (headers or {}).items():
                conn.putheader(key, value)
            chunked = size is None
            if chunked:
                conn.putheader("Transfer-Encoding", "chunked")
            else:
                conn.putheader("Content-Length", str(size))
            conn.endheaders()
            sent = 0
            try:
                for data in _pieces(body, piece):
                    if stop_after is not None and sent + len(data) >= stop_after:
                        data = data[: stop_after - sent]
                    if data:
                        conn.send(b"%x\r\n%s\r\n" % (len(data), data) if chunked else data)
                    sent += len(data)
                    if progress:
                        progress(len(data))
                    if stop_after is not None and sent >= stop_after:
                        return Reply(0, b"aborted by the client", {})
                if chunked:
                    conn.send(b"0\r\n\r\n")
            except OSError:
                # glance may answer (and close) before reading the whole body, e.g. a 413
                # because the cluster is full: its reply is still there to read.
                pass
            resp = conn.getresponse()
            return Reply(resp.status, resp.read(), dict(resp.getheaders()))
        finally:
            conn.close()

    def import_image(
        self,
        image_id: str,
        method: str = "glance-direct",
        *,
        method_fields: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        **fields: Any,
    ) -> Reply:
        """``POST /import``: ``method_fields`` go into ``method`` (``uri``...), ``fields`` into
        the body (``stores``, ``all_stores``, ``all_stores_must_succeed``)."""
        body = {"method": {"name": method, **(method_fields or {})}, **fields}
        return self.request("POST", f"/v2/images/{image_id}/import", body, headers=headers)

    def wait_for_status(
        self, image_id: str, statuses: Iterable[str], *, timeout: float = 120.0
    ) -> dict[str, Any]:
        """Poll until the image's status is one of ``statuses``; return the image."""
        wanted = set(statuses)
        deadline = time.monotonic() + timeout
        while True:
            image = self.get_image(image_id)
            if image["status"] in wanted:
                return image
            if time.monotonic() > deadline:
                raise TimeoutError(f"image {image_id} is {image['status']}, wanted {wanted}")
            time.sleep(0.2)

    def download(
        self,
        image_id: str,
        *,
        range_header: str | None = None,
        progress: Progress | None = None,
        piece: int = 4 * units.Mi,
    ) -> Generator[bytes, None, None]:
        """Stream the image data (``GET /file``); 200 or 206 expected, else GlanceError.

        Closing the generator early closes the connection: a client abort.
        """
        path = f"/v2/images/{image_id}/file"
        conn = self.connect()
        try:
            headers = {"Range": range_header} if range_header else {}
            conn.request("GET", path, headers=headers)
            resp = conn.getresponse()
            if resp.status not in (200, 206):
                raise GlanceError("GET", path, resp.status, resp.read().decode(errors="replace"))
            while data := resp.read(piece):
                if progress:
                    progress(len(data))
                yield data
        finally:
            conn.close()

    def download_bytes(self, image_id: str, *, range_header: str | None = None) -> bytes:
        return b"".join(self.download(image_id, range_header=range_header))

    def download_reply(self, image_id: str, *, range_header: str | None = None) -> Reply:
        """The whole response, whatever its status (for checking error statuses)."""
        headers = {"Range": range_header} if range_header else {}
        return self.request("GET", f"/v2/images/{image_id}/file", headers=headers)
