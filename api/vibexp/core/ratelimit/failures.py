"""Throttling a client address that keeps failing authentication, in process memory.

A sliding window per address: once an address has ``limit`` failures within ``window`` seconds, it is refused
until the oldest of them leaves the window. This runs before the key is even parsed, so an address spraying
guessed or stale keys costs one dict lookup per request, not a hash, a cache miss and a database query. Per
process on purpose: it protects this process's CPU and database pool, and keeps the database off the refusal path.
Memory is bounded: at most ``max_tracked`` addresses (the oldest are forgotten first).
"""

from __future__ import annotations

import math
import time
from collections import deque

__all__ = ["FailureThrottle"]


class FailureThrottle:
    def __init__(self, *, limit: int, window: float, max_tracked: int = 10_000) -> None:
        self.limit = limit
        self.window = window
        self.max_tracked = max_tracked
        self._failures: dict[str, deque[float]] = {}

    def retry_after(self, address: str, *, now: float | None = None) -> int:
        """Seconds until ``address`` may try again; 0 when it may now."""
        times = self._failures.get(address)
        if not times:
            return 0
        now = time.monotonic() if now is None else now
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del self._failures[address]
            return 0
        if len(times) < self.limit:
            return 0
        return max(1, math.ceil(times[-self.limit] + self.window - now))

    def failed(self, address: str, *, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        times = self._failures.get(address)
        if times is None:
            while len(self._failures) >= self.max_tracked:
                self._failures.pop(next(iter(self._failures)))
            times = self._failures[address] = deque(maxlen=self.limit)
        times.append(now)
