"""Rate-limit counts restart at the top of each UTC hour; tests that count within one window wait out its end."""

from __future__ import annotations

import asyncio
import time

from vibexp.core.ratelimit.limiter import WINDOW_SECONDS

__all__ = ["inside_one_hour_window", "inside_one_hour_window_blocking"]


def _wait_needed(margin: float) -> float:
    left = WINDOW_SECONDS - time.time() % WINDOW_SECONDS
    return left + 0.5 if left < margin else 0.0


async def inside_one_hour_window(margin: float = 20.0) -> None:
    """Return at once when at least `margin` seconds of this window are left, else after the next hour begins."""
    await asyncio.sleep(_wait_needed(margin))


def inside_one_hour_window_blocking(margin: float = 20.0) -> None:
    """`inside_one_hour_window` for synchronous tests."""
    time.sleep(_wait_needed(margin))
