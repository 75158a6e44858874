"""One retry schedule per object: exponential backoff with a cap, shared by every path that touches the object.

The change handlers, the sync timer and Secret events all consult it before an attempt, so while the database is
down an object is tried once per backoff step, whichever trigger comes first (before, the reconcile handler and
the timer each retried on their own: ~70 attempts per object per minute).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Backoff"]


@dataclass(slots=True)
class _State:
    failures: int
    not_before: float


class Backoff:
    def __init__(self, *, base: float, cap: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._base = base
        self._cap = max(cap, base)
        self._clock = clock
        self._states: dict[str, _State] = {}

    def remaining(self, uid: str) -> float:
        """Seconds to wait before the next attempt on this object (0: go ahead)."""
        state = self._states.get(uid)
        return 0.0 if state is None else max(0.0, state.not_before - self._clock())

    def failures(self, uid: str) -> int:
        state = self._states.get(uid)
        return 0 if state is None else state.failures

    def failed(self, uid: str) -> float:
        """Record a failed attempt; returns the delay before the next one (doubling up to the cap)."""
        failures = self.failures(uid) + 1
        delay = min(self._cap, self._base * float(2 ** (failures - 1)))
        self._states[uid] = _State(failures, self._clock() + delay)
        return delay

    def succeeded(self, uid: str) -> None:
        self._states.pop(uid, None)
