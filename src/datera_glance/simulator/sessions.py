"""Session keys: made by ``PUT /login``, valid until ``ttl`` seconds of idleness."""

from __future__ import annotations

import secrets
from collections.abc import Callable

INVALID_SESSION = "The key provided with the request does not correspond to a valid session."


class Sessions:
    """Key -> expiry (on ``clock``). Not persisted: a restart drops every session, like EDF."""

    def __init__(self, ttl: float, clock: Callable[[], float]) -> None:
        self.ttl = ttl
        self.clock = clock
        self._expiry: dict[str, float] = {}

    def create(self) -> str:
        now = self.clock()
        for old in [k for k, exp in self._expiry.items() if exp <= now]:
            del self._expiry[old]
        key = secrets.token_hex(16)
        self._expiry[key] = now + self.ttl
        return key

    def touch(self, key: str) -> bool:
        """Whether ``key`` is valid; every use extends its life (an idle timeout)."""
        expiry = self._expiry.get(key)
        now = self.clock()
        if not key or expiry is None or expiry <= now:
            self._expiry.pop(key, None)
            return False
        self._expiry[key] = now + self.ttl
        return True

    def end(self, key: str) -> None:
        self._expiry.pop(key, None)

    def clear(self) -> None:
        self._expiry.clear()

    def live(self) -> int:
        now = self.clock()
        return sum(1 for exp in self._expiry.values() if exp > now)
