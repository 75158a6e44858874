"""Failed sign-in throttling, per e-mail address and per client IP, in this process.

A sliding window of failures: once an e-mail has ``per_email`` failures (or an IP ``per_ip``) within ``window``
seconds, further attempts are refused without checking the password until the oldest failure leaves the window.
The per-e-mail limit stops guessing one account's password from many addresses; the per-IP limit stops one address
from spraying many accounts. A success clears the e-mail's failures (not the IP's, so a valid account cannot be
used to reset an attacker's budget). State is per process: with N replicas an attacker gets at most N times the
budget, which still bounds guessing to a handful of passwords per minute against argon2id hashes.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass

__all__ = ["SignInThrottle", "ThrottleVerdict"]

_MAX_TRACKED = 50_000


@dataclass(frozen=True, slots=True)
class ThrottleVerdict:
    allowed: bool
    retry_after: int = 0  # seconds until another attempt is accepted


class SignInThrottle:
    def __init__(self, *, per_email: int = 5, per_ip: int = 20, window: float = 900.0) -> None:
        self.per_email = per_email
        self.per_ip = per_ip
        self.window = window
        self._failures: dict[str, deque[float]] = {}

    def check(self, *, email: str, ip: str, now: float | None = None) -> ThrottleVerdict:
        """May this e-mail sign in from this address now?"""
        now = time.monotonic() if now is None else now
        wait = max(
            self._wait(f"email:{email}", self.per_email, now),
            self._wait(f"ip:{ip}", self.per_ip, now),
        )
        return ThrottleVerdict(allowed=wait <= 0, retry_after=math.ceil(wait) if wait > 0 else 0)

    def failed(self, *, email: str, ip: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        if len(self._failures) >= _MAX_TRACKED:
            self._prune(now)
        for key in (f"email:{email}", f"ip:{ip}"):
            self._failures.setdefault(key, deque()).append(now)

    def succeeded(self, *, email: str) -> None:
        self._failures.pop(f"email:{email}", None)

    def _wait(self, key: str, limit: int, now: float) -> float:
        times = self._failures.get(key)
        if not times:
            return 0.0
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del self._failures[key]
            return 0.0
        if len(times) < limit:
            return 0.0
        return times[-limit] + self.window - now

    def _prune(self, now: float) -> None:
        for key in list(self._failures):
            self._wait(key, 1, now)
        while len(self._failures) >= _MAX_TRACKED:  # still full of live entries: forget the oldest keys
            self._failures.pop(next(iter(self._failures)))
