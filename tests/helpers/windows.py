"""Rate-limit counts restart at the top of each UTC hour; tests that count within one window wait out its end. The
alert tests count a minute's requests (``away_from_minute_boundary``) and make working hours around now."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

from vibexp.core.ratelimit.limiter import WINDOW_SECONDS

__all__ = ["away_from_minute_boundary", "hours_around_now", "inside_one_hour_window", "inside_one_hour_window_blocking"]


def _wait_needed(margin: float) -> float:
    left = WINDOW_SECONDS - time.time() % WINDOW_SECONDS
    return left + 0.5 if left < margin else 0.0


async def inside_one_hour_window(margin: float = 20.0) -> None:
    """Return at once when at least `margin` seconds of this window are left, else after the next hour begins."""
    await asyncio.sleep(_wait_needed(margin))


def inside_one_hour_window_blocking(margin: float = 20.0) -> None:
    """`inside_one_hour_window` for synchronous tests."""
    time.sleep(_wait_needed(margin))


async def away_from_minute_boundary() -> None:
    """The spike tests count one minute's requests: do not start in a minute's last seconds."""
    now = datetime.now(UTC)
    if now.second >= 50:
        await asyncio.sleep(61 - now.second)


def hours_around_now(zone: str) -> str:
    """Every day, the current UTC hour, read in ``zone``: inside for UTC, outside for a zone 9 hours away."""
    hour = datetime.now(UTC).hour
    return f"Mon-Sun {hour:02d}:00-{hour + 1:02d}:00 {zone}"
