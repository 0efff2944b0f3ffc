"""A deadline for a whole answer, which requests cannot give.

requests and urllib3 bound each socket read (the read time-out), never a whole answer: a server
sending one byte a second holds a call as long as it likes. The transport reads the body itself
and looks at its clock between reads, but the status line and headers are read by http.client
inside ``Session.request``, and urllib3 1.26 (OpenStack 2025.1, 2025.2) reads a body only in
whole pieces. So the transport's own session (``guarded_session``) makes connections that, when
they start waiting for an answer, arm a timer for what is left of the attempt's time
(``answer_by``); when it fires it shuts the socket down, the read waiting on it ends at once,
and the transport reports a slow answer (``Watch.fired``). The timers end with the attempt.

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
        self._timers: list[threading.Timer] = []
        self.fired = False

    def arm(self, sock: object) -> None:
        """Shut ``sock`` down when the attempt's time is up, unless the attempt ends first."""
        timer = threading.Timer(max(0.0, self.until - self._clock()), self._cut, (sock,))
        timer.daemon = True
        self._timers.append(timer)
        timer.start()

    def disarm(self) -> None:
        for timer in self._timers:
            timer.cancel()

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
    """This thread's requests through a guarded session must be answered, headers and body,
    by ``until`` (on ``clock``) while the block runs."""
    watch = Watch(until, clock)
    _current.watch = watch
    try:
        yield watch
    finally:
        _current.watch = None
        watch.disarm()


def _guard(conn: HTTPConnection) -> None:
    """Arm this thread's watch, if any, on ``conn``, which now waits for an answer."""
    watch: Watch | None = getattr(_current, "watch", None)
    if watch is not None and conn.sock is not None:
        watch.arm(conn.sock)


class _GuardedHTTPConnection(HTTPConnection):
    def getresponse(self, *args: Any, **kwargs: Any) -> Any:
        _guard(self)
        return super().getresponse(*args, **kwargs)


class _GuardedHTTPSConnection(HTTPSConnection):
    def getresponse(self, *args: Any, **kwargs: Any) -> Any:
        _guard(self)
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
    """A ``requests.Session`` whose connections keep ``answer_by``'s deadline."""
    session = requests.Session()
    adapter = _GuardedAdapter()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session
