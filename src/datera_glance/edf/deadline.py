"""A deadline for the status line and headers of an answer, which requests cannot give.

requests and urllib3 bound each socket read (the read time-out), never a whole answer. The
transport reads the body itself and looks at its clock between reads; the status line and the
headers are read by http.client inside ``Session.request``, where a server sending one byte
every second holds the call as long as it likes. So the transport's own session
(``guarded_session``) makes connections whose ``getresponse`` arms a timer for what is left of
the attempt's time (``answer_by``), and when it fires shuts the socket down: the read waiting
for headers ends at once and the transport reports a slow answer (``Watch.fired``).

A session given to the transport by a caller (a test's fake) is used as it is.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import requests
import requests.adapters
from urllib3 import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.connection import HTTPConnection, HTTPSConnection

__all__ = ["Watch", "answer_by", "guarded_session"]

_current = threading.local()  # the Watch of the attempt this thread is making, if any


class Watch:
    """The time one attempt has for its answer; ``fired`` once its timer cut a connection."""

    def __init__(self, until: float, clock: Callable[[], float]) -> None:
        self.until = until
        self._clock = clock
        self.fired = False

    def arm(self, sock: object) -> threading.Timer:
        """A started timer that shuts ``sock`` down when the attempt's time is up."""
        timer = threading.Timer(max(0.0, self.until - self._clock()), self._cut, (sock,))
        timer.daemon = True
        timer.start()
        return timer

    def _cut(self, sock: object) -> None:
        self.fired = True
        if isinstance(sock, socket.socket):
            # The plain socket's shutdown, also under TLS: the blocked read sees the end of
            # the stream, whichever layer it is in (SSLSocket.shutdown would first drop its
            # SSL object under the reading thread).
            with contextlib.suppress(OSError):
                socket.socket.shutdown(sock, socket.SHUT_RDWR)


@contextlib.contextmanager
def answer_by(until: float, clock: Callable[[], float]) -> Iterator[Watch]:
    """This thread's requests through a guarded session must have their headers by ``until``
    (on ``clock``) while the block runs."""
    watch = Watch(until, clock)
    _current.watch = watch
    try:
        yield watch
    finally:
        _current.watch = None


@contextlib.contextmanager
def _guarded(conn: HTTPConnection) -> Iterator[None]:
    watch: Watch | None = getattr(_current, "watch", None)
    timer = watch.arm(conn.sock) if watch is not None and conn.sock is not None else None
    try:
        yield
    finally:
        if timer is not None:
            timer.cancel()


class _GuardedHTTPConnection(HTTPConnection):
    def getresponse(self, *args: Any, **kwargs: Any) -> Any:
        with _guarded(self):
            return super().getresponse(*args, **kwargs)


class _GuardedHTTPSConnection(HTTPSConnection):
    def getresponse(self, *args: Any, **kwargs: Any) -> Any:
        with _guarded(self):
            return super().getresponse(*args, **kwargs)


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _GuardedHTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _GuardedHTTPSConnection


class _GuardedAdapter(requests.adapters.HTTPAdapter):
    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}


def guarded_session() -> requests.Session:
    """A ``requests.Session`` whose connections keep ``answer_by``'s deadline for headers."""
    session = requests.Session()
    adapter = _GuardedAdapter()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session
