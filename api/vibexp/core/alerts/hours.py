"""A tenant's ``working_hours`` (``Mon-Fri 08:00-19:00 Europe/Berlin``): parsed once, asked ``within(instant)``.

The format is three words: the days, the hours, an IANA time zone.

* Days: a range (``Mon-Fri``; it may wrap, ``Fri-Mon``), a comma list (``Mon,Wed,Fri``) or both (``Mon-Wed,Sat``);
  three-letter English names, any case.
* Hours: ``HH:MM-HH:MM`` on a 24-hour clock, the end exclusive; ``24:00`` ends at midnight. An end before the start
  is a night shift (``22:00-06:00``): the hours after midnight belong to the day the shift started on.
* Zone: required (``UTC`` is one), so "08:00" never silently means the server's time.

Bad input raises ``InvalidInput`` naming what is wrong (422 over HTTP, exit 2 in the CLI). ``parse`` returns the
canonical spelling that is stored (``mon-fri 8:00-19:00 europe/berlin`` is refused: zone names are case-sensitive).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from vibexp.core.errors import InvalidInput

__all__ = ["WorkingHours", "parse", "within"]

DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_DAY_INDEX = {name.lower(): index for index, name in enumerate(DAYS)}
_TIME = re.compile(r"^(\d{2}):(\d{2})$")
_EXAMPLE = "e.g. 'Mon-Fri 08:00-19:00 Europe/Berlin'"
MAX_LENGTH = 100


@dataclass(frozen=True, slots=True)
class WorkingHours:
    days: frozenset[int]  # 0 = Monday, as datetime.weekday()
    start: int  # minutes after midnight
    end: int  # minutes after midnight; 1440 = midnight at the end; < start for a night shift
    zone: ZoneInfo
    text: str  # the canonical spelling

    def within(self, instant: datetime) -> bool:
        """Whether the aware ``instant`` falls inside these hours, in their zone."""
        if instant.tzinfo is None:
            raise ValueError("within() needs an aware datetime")
        local = instant.astimezone(self.zone)
        minute = local.hour * 60 + local.minute
        day = local.weekday()
        if self.start < self.end:
            return day in self.days and self.start <= minute < self.end
        # Night shift: from the start to midnight on a listed day, from midnight to the end on the day after one.
        return (day in self.days and minute >= self.start) or ((day - 1) % 7 in self.days and minute < self.end)


def _day(word: str, spec: str) -> int:
    index = _DAY_INDEX.get(word.lower())
    if index is None:
        raise InvalidInput(f"working hours: unknown day {word!r} in {spec!r}; use {', '.join(DAYS)}")
    return index


def _days(spec: str) -> tuple[frozenset[int], str]:
    days: set[int] = set()
    parts: list[str] = []
    for item in spec.split(","):
        first, dash, last = item.partition("-")
        if not first or (dash and not last):
            raise InvalidInput(f"working hours: bad days {spec!r}; a range like Mon-Fri or a list like Mon,Wed,Fri")
        start = _day(first, spec)
        if not dash:
            days.add(start)
            parts.append(DAYS[start])
            continue
        stop = _day(last, spec)
        span = (stop - start) % 7
        days.update((start + step) % 7 for step in range(span + 1))
        parts.append(f"{DAYS[start]}-{DAYS[stop]}")
    return frozenset(days), ",".join(parts)


def _minutes(text: str, *, spec: str, end: bool) -> int:
    match = _TIME.match(text)
    if match is None:
        raise InvalidInput(f"working hours: bad time {text!r} in {spec!r}; use HH:MM-HH:MM, e.g. 08:00-19:00")
    hours, minutes = int(match.group(1)), int(match.group(2))
    if end and (hours, minutes) == (24, 0):
        return 24 * 60
    if hours > 23 or minutes > 59:
        raise InvalidInput(f"working hours: {text!r} is not a time of day (00:00 to 23:59; 24:00 only as the end)")
    return hours * 60 + minutes


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):  # ValueError: not a zone key at all ("../x", "/etc")
        raise InvalidInput(
            f"working hours: unknown time zone {name!r}; use an IANA name such as Europe/Berlin, America/New_York "
            "or UTC"
        ) from None


@lru_cache(maxsize=1024)
def parse(text: str) -> WorkingHours:
    """The parsed hours; ``InvalidInput`` with the reason when ``text`` does not parse. Cached: a detector may ask
    for every request's tenant."""
    if len(text) > MAX_LENGTH:
        raise InvalidInput(f"working hours: at most {MAX_LENGTH} characters")
    words = text.split()
    if len(words) != 3:
        raise InvalidInput(f"working hours: expected days, hours and a time zone, {_EXAMPLE}; got {text!r}")
    day_spec, hour_spec, zone_name = words
    days, days_text = _days(day_spec)
    start_text, dash, end_text = hour_spec.partition("-")
    if not dash:
        raise InvalidInput(f"working hours: bad hours {hour_spec!r}; use HH:MM-HH:MM, e.g. 08:00-19:00")
    start = _minutes(start_text, spec=hour_spec, end=False)
    end = _minutes(end_text, spec=hour_spec, end=True)
    if start == end:
        raise InvalidInput(f"working hours: {hour_spec!r} is empty (the end must differ from the start)")
    zone = _zone(zone_name)
    return WorkingHours(
        days=days, start=start, end=end, zone=zone, text=f"{days_text} {start_text}-{end_text} {zone.key}"
    )


def within(hours: str | WorkingHours, instant: datetime) -> bool:
    """Whether ``instant`` falls inside ``hours`` (a stored ``working_hours`` string or a parsed one)."""
    parsed = parse(hours) if isinstance(hours, str) else hours
    return parsed.within(instant)
