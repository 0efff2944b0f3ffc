"""Injected faults: which requests get one, and the answer that replaces theirs."""

from __future__ import annotations

import dataclasses
import re
import threading
from dataclasses import dataclass
from typing import Any

from datera_glance.simulator.routing import ERROR_NAMES, Response, error_body


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

    def __post_init__(self) -> None:
        if self.status is None and not self.drop and self.delay is None:
            raise ValueError("a fault needs status, drop or delay")
        if self.status is not None and not 400 <= self.status <= 599:
            raise ValueError("status must be 4xx or 5xx")
        if self.count is not None and self.count < 1:
            raise ValueError("count must be at least 1 (or null: every request)")
        if self.skip < 0 or (self.delay is not None and self.delay < 0):
            raise ValueError("skip and delay must not be negative")

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

    def answer(self, version: str, path: str, method: str) -> Response | None:
        """What the client gets instead of the real answer (``None``: only a delay)."""
        if self.drop:
            return Response(0, None, drop=True)
        if self.status is None:
            return None
        status = self.status
        name = self.name or ERROR_NAMES.get(status, "InternalError")
        message = self.message or f"Injected fault: HTTP {status}"
        headers = {}
        if self.retry_after is not None:
            retry = float(self.retry_after)
            headers["Retry-After"] = str(int(retry)) if retry.is_integer() else str(retry)
        body = error_body(status, name, message, [], version=version, path=path, op=method)
        return Response(status, body, headers)


#: Every field of ``Fault``: what ``POST /_sim/faults`` accepts.
FAULT_FIELDS = frozenset(f.name for f in dataclasses.fields(Fault))


class Faults:
    """The injected faults, in the order added; the first that matches a request applies."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        # Requests that took a fault and have not been answered yet (a delayed one still
        # sleeping, then taking effect): a test waits for them before judging the cluster.
        self._in_flight = 0
        self._settled = threading.Condition(self._lock)

    def add(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def to_json(self) -> list[dict[str, Any]]:
        with self._lock:
            return [f.to_json() for f in self._faults]

    def take(self, method: str, path: str) -> Fault | None:
        """The fault for this request, counting it (``skip`` first, then ``count``)."""
        with self._lock:
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
                self._in_flight += 1
                return fault
        return None

    def done(self) -> None:
        """A request that ``take`` gave a fault has been answered (or dropped)."""
        with self._settled:
            self._in_flight -= 1
            self._settled.notify_all()

    def wait_settled(self, timeout: float) -> bool:
        """Wait until every faulted request has been answered; False after ``timeout``.

        A delayed request still takes effect when its sleep ends, possibly after the client
        gave up on it and retried: what the cluster holds is only final after that.
        """
        with self._settled:
            return self._settled.wait_for(lambda: self._in_flight == 0, timeout)
