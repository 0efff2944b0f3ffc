"""The retry policy of one EDF call: what is retried, how long to wait, when to give up.

The transport asks it after every attempt; the client asks it what a retried request's error
means. It knows nothing of sessions, URLs or logging.
"""

from __future__ import annotations

import random as _random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import requests

__all__ = ["BACKOFF_BASE", "BACKOFF_CAP", "STILL_INITIALIZING", "RetryPolicy"]

STILL_INITIALIZING = "REST server is still initializing"
# Capped exponential backoff with "equal jitter" (half fixed, half random), so a cluster
# restarting under many clients is not hit in lockstep.
BACKOFF_BASE = 0.5
BACKOFF_CAP = 15.0


@dataclass(frozen=True)
class RetryPolicy:
    """Retries of one HTTP exchange within ``deadline`` seconds of its first attempt."""

    deadline: float = 120.0
    backoff_base: float = BACKOFF_BASE
    backoff_cap: float = BACKOFF_CAP
    random: Callable[[], float] = _random.random

    def retryable(
        self, status: int | None = None, body: Any = None, error: Exception | None = None
    ) -> bool:
        """Whether to try again after this outcome: the one place that decides it.

        ``error`` is set when no response came (``status`` None). Connection errors and
        timeouts may pass, a TLS failure will not; of the responses, 503 and EDF's 500 "still
        initializing" (a restarting cluster) are retried, nothing else.
        """
        if error is not None:
            return isinstance(
                error, requests.exceptions.ConnectionError | requests.exceptions.Timeout
            ) and not isinstance(error, requests.exceptions.SSLError)
        if status == 503:
            return True
        if status == 500:
            message = body.get("message", "") if isinstance(body, Mapping) else str(body or "")
            return STILL_INITIALIZING in str(message)
        return False

    def backoff(self, attempt: int) -> float:
        """The jittered wait after attempt ``attempt`` (0-based) failed."""
        ceiling = min(self.backoff_cap, self.backoff_base * (2**attempt))
        return ceiling / 2 + self.random() * ceiling / 2

    def next_delay(
        self, attempt: int, remaining: float, retry_after: float | None = None
    ) -> float | None:
        """Seconds to wait before the next attempt, or None to give up.

        The last wait is cut to what is left of the deadline (one final attempt at the end);
        the server's ``Retry-After`` is a minimum, and one beyond the deadline means give up.
        """
        if remaining <= 0:
            return None
        delay = min(self.backoff(attempt), remaining)
        if retry_after is not None:
            delay = max(delay, retry_after)
        return None if delay > remaining else delay

    @staticmethod
    def lost_response_success(method: str, status: int) -> bool:
        """Whether this error, after a retry of a request whose response was lost, may be
        the first try's own effect: a POST's 409 (it created the object) or a DELETE's 404
        (it deleted it). The caller confirms a POST's by looking the object up."""
        return (method, status) in (("POST", 409), ("DELETE", 404))
