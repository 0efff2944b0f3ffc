"""This process's pending ends of lingering attachments (``AttachSettings.linger``)."""

from __future__ import annotations

import atexit
import os
import threading
import uuid
import weakref
from collections.abc import Callable
from typing import Protocol

from datera_glance.attach.records import Linger, process_running
from datera_glance.host import boot_id, start_ticks


class Timer(Protocol):
    """A pending call; ``cancel()`` before it runs prevents it."""

    def cancel(self) -> None: ...


#: ``timer(delay, callback) -> Timer``: run ``callback`` once, ``delay`` seconds from now.
TimerFactory = Callable[[float, Callable[[], None]], Timer]


def thread_timer(delay: float, callback: Callable[[], None]) -> Timer:
    """A daemon ``threading.Timer``: a pending linger never holds up exit (``close()`` runs
    at exit and detaches first)."""
    timer = threading.Timer(delay, callback)
    timer.daemon = True
    timer.start()
    return timer


class Lingers:
    """This process's pending ends of lingers: key -> (linger id, timer)."""

    def __init__(self, clock: Callable[[], float], timer: TimerFactory) -> None:
        self.boot = boot_id()
        self._clock = clock
        self._timer = timer
        self._pending: dict[str, tuple[str, Timer]] = {}
        self._lock = threading.Lock()
        self._at_exit = False

    def start(self, key: str, seconds: float, end: Callable[[str, str], None]) -> Linger:
        """Schedule ``end(key, id)`` in ``seconds``; return the record's linger."""
        linger_id = uuid.uuid4().hex
        timer = self._timer(seconds, lambda: end(key, linger_id))
        with self._lock:
            previous = self._pending.pop(key, None)
            self._pending[key] = (linger_id, timer)
            if not self._at_exit:
                # Weak: the exit hook does not keep a dropped store's attacher alive.
                atexit.register(_close_at_exit, weakref.ref(self), weakref.WeakMethod(end))
                self._at_exit = True
        if previous is not None:
            previous[1].cancel()
        pid = os.getpid()
        return Linger(
            id=linger_id,
            pid=pid,
            start=start_ticks(pid),
            boot=self.boot,
            until=self._clock() + seconds,
        )

    def forget(self, key: str, linger_id: str) -> None:
        with self._lock:
            if self._pending.get(key, ("",))[0] == linger_id:
                del self._pending[key]

    def cancel(self, key: str) -> None:
        with self._lock:
            pending = self._pending.pop(key, None)
        if pending is not None:
            pending[1].cancel()

    def take_all(self) -> list[tuple[str, str]]:
        with self._lock:
            pending, self._pending = self._pending, {}
        for _linger_id, timer in pending.values():
            timer.cancel()
        return [(key, linger_id) for key, (linger_id, _timer) in pending.items()]

    def live(self, linger: Linger | None) -> bool:
        """Is ``linger`` live: of this boot, its process running, its time not up?"""
        return (
            linger is not None
            and linger.boot == self.boot
            and process_running(linger.pid, linger.start)
            and linger.until > self._clock()
        )

    def connected(self, linger: Linger | None) -> bool:
        """Is a record's idle attachment still connected (lingering, this boot)?"""
        return linger is not None and linger.boot == self.boot


def _close_at_exit(
    lingers_ref: weakref.ref[Lingers], end_ref: weakref.WeakMethod[Callable[[str, str], None]]
) -> None:
    """glance-api's shutdown: nothing of this process lingers past it."""
    lingers, end = lingers_ref(), end_ref()
    if lingers is not None and end is not None:
        for key, linger_id in lingers.take_all():
            end(key, linger_id)
