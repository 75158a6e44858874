"""Logging for background loops that retry (key-change polling, usage flushing) without flooding the log.

While the database is down such a loop fails every fraction of a second. Logging a traceback each time buries
everything else (a quarter-second poll wrote ~150 lines a second). So: the first failure is logged with its
traceback, then one line per ``every`` seconds while failures continue, and one line when the loop recovers. A
database that flaps (a failover, a shutdown in progress: one attempt slips through between failures) fails again
within ``every`` seconds of recovering: that is one line without a traceback, not a second full report.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable

__all__ = ["FailureLog"]


class FailureLog:
    def __init__(
        self,
        logger: logging.Logger,
        what: str,
        *,
        every: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log = logger
        self._what = what
        self._every = every
        self._clock = clock
        self._failures = 0
        self._last_logged = 0.0
        self._recovered_at: float | None = None

    @property
    def failures(self) -> int:
        """Consecutive failures since the last success."""
        return self._failures

    def failed(self, consequence: str) -> None:
        """Record a failure; call it from the ``except`` block so the first one carries its traceback."""
        self._failures += 1
        now = self._clock()
        if self._failures == 1:
            since = None if self._recovered_at is None else now - self._recovered_at
            if since is not None and since < self._every:
                self._log.warning(
                    "%s failing again %.1f s after it recovered (%s); %s", self._what, since, _cause(), consequence
                )
            else:
                self._log.warning("%s failed; %s", self._what, consequence, exc_info=True)
        elif now - self._last_logged >= self._every:
            self._log.warning(
                "%s still failing after %d attempts (%s); %s", self._what, self._failures, _cause(), consequence
            )
        else:
            return
        self._last_logged = now

    def succeeded(self) -> None:
        if self._failures:
            self._log.info("%s recovered after %d failed attempts", self._what, self._failures)
            self._failures = 0
            self._recovered_at = self._clock()


def _cause() -> str:
    """The exception being handled, in one line."""
    exc = sys.exc_info()[1]
    first_line = str(exc).partition("\n")[0]
    return f"{type(exc).__name__}: {first_line}"[:300]
