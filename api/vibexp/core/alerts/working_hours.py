"""A tenant's ``working_hours`` (``Mon-Fri 08:00-19:00 Europe/Berlin``), which the ``after_hours`` alert measures
requests against.

The text is ``DAYS HH:MM-HH:MM [ZONE]``: DAYS a comma-separated list of days or day ranges (``Mon-Fri``,
``Mon,Wed,Fri``, ``Sat-Sun``, ``Fri-Mon`` wraps past Sunday), the hours in the zone's local time (start before end,
``24:00`` allowed as the end), and the zone an IANA name (``UTC`` when omitted). Parsing is strict and names the
problem, so an adapter can answer a bad value with a 422.

The alert settings' change brings its own parser (``vibexp.core.alerts.hours``, the one that validates the stored
value, with night shifts); this module has the same shape (``within``, ``zone``, ``text``) so the detectors can
switch to it by changing one import when both are merged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["WorkingHours", "parse_working_hours"]

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_TIME = re.compile(r"(\d{1,2}):(\d{2})")


@dataclass(frozen=True, slots=True)
class WorkingHours:
    #: ISO weekdays as ``datetime.weekday()`` numbers (Monday 0).
    days: frozenset[int]
    #: Minutes after local midnight: start included, end excluded.
    start: int
    end: int
    zone: ZoneInfo
    text: str

    def within(self, instant: datetime) -> bool:
        """Whether the (timezone-aware) instant falls inside the working hours, in the tenant's zone."""
        local = instant.astimezone(self.zone)
        minute = local.hour * 60 + local.minute
        return local.weekday() in self.days and self.start <= minute < self.end


def _day(name: str) -> int:
    """The weekday number of ``Mon`` ... ``Sun`` (any case), or -1."""
    lowered = name.lower()
    return _DAYS.index(lowered) if lowered in _DAYS else -1


def _days(spec: str) -> frozenset[int]:
    days: set[int] = set()
    for part in spec.split(","):
        first, dash, last = part.partition("-")
        start, end = _day(first), _day(last) if dash else _day(first)
        if start < 0 or end < 0:
            raise ValueError(f"{part!r} is not a day or day range (use Mon, Tue ... Sun, e.g. 'Mon-Fri')")
        day = start
        days.add(day)
        while day != end:
            day = (day + 1) % 7
            days.add(day)
    return frozenset(days)


def _minutes(value: str, *, end: bool) -> int:
    match = _TIME.fullmatch(value)
    if match is None:
        raise ValueError(f"{value!r} is not a time (use HH:MM, e.g. 08:00)")
    hours, minutes = int(match[1]), int(match[2])
    if (hours, minutes) == (24, 0) and end:
        return 24 * 60
    if hours > 23 or minutes > 59:
        raise ValueError(f"{value!r} is not a time of day")
    return hours * 60 + minutes


def parse_working_hours(text: str) -> WorkingHours:
    """Parse ``DAYS HH:MM-HH:MM [ZONE]``; raises ValueError with a message fit for the user."""
    parts = text.split()
    if len(parts) not in (2, 3):
        raise ValueError("working hours look like 'Mon-Fri 08:00-19:00 Europe/Berlin' (days, hours, time zone)")
    days = _days(parts[0])
    first, dash, last = parts[1].partition("-")
    if not dash:
        raise ValueError(f"{parts[1]!r} is not a range of hours (use HH:MM-HH:MM, e.g. 08:00-19:00)")
    start, end = _minutes(first, end=False), _minutes(last, end=True)
    if start >= end:
        raise ValueError(f"working hours must start before they end: {parts[1]!r}")
    zone_name = parts[2] if len(parts) == 3 else "UTC"
    try:
        zone = ZoneInfo(zone_name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{zone_name!r} is not a time zone (use an IANA name such as Europe/Berlin)") from None
    return WorkingHours(days=days, start=start, end=end, zone=zone, text=text)
