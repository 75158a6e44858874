"""Requests per hour for the charts: the last 24 hours and the last 7 days, as plain data for the page's own JS.

The page embeds the series as JSON (``<script type="application/json">``, not executed) and ``static/app.js``
draws it as inline SVG; the same numbers are in a table for screen readers and for browsers without JS.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from vibexp.core.access import Caller
from vibexp.core.usage.usecases import HourlyCount, hourly_counts

__all__ = ["Chart", "usage_charts"]


@dataclass(frozen=True, slots=True)
class Chart:
    id: str
    title: str
    hours: int
    points: list[HourlyCount]

    @property
    def total(self) -> int:
        return sum(p.requests for p in self.points)

    @property
    def peak(self) -> HourlyCount | None:
        best = max(self.points, key=lambda p: p.requests, default=None)
        return best if best is not None and best.requests > 0 else None

    def data(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "hours": self.hours,
            "points": [{"t": p.hour.isoformat(), "n": p.requests} for p in self.points],
        }


async def usage_charts(session: AsyncSession, *, caller: Caller, key_id: str | None = None) -> list[Chart]:
    day = await hourly_counts(session, caller=caller, hours=24, key_id=key_id)
    week = await hourly_counts(session, caller=caller, hours=24 * 7, key_id=key_id)
    return [
        Chart(id="chart-24h", title="Requests per hour, last 24 hours", hours=24, points=day),
        Chart(id="chart-7d", title="Requests per hour, last 7 days", hours=24 * 7, points=week),
    ]
