"""Time-ordered identifiers: sortable by creation, so cursors can page on the primary key alone.

Within one process every id is greater than the one before it, also within one millisecond (RFC 9562 section 6.2,
method 2, with a random increment): a memory stored 0.3 ms after another sorts after it, so a page read between the
two never skips the second. Ids of different processes in the same millisecond are ordered by their random bits.
"""

from __future__ import annotations

import re
import secrets
import threading
import time

__all__ = ["is_id", "new_id"]


_RAND_BITS = 74
#: The last id this process issued, as (milliseconds, random bits); the next one is greater.
_last = (0, 0)
_lock = threading.Lock()


def new_id() -> str:
    """A UUIDv7-layout identifier (48-bit millisecond timestamp, then random bits), as a canonical string."""
    global _last
    millis = (time.time_ns() // 1_000_000) & ((1 << 48) - 1)
    rand = secrets.randbits(_RAND_BITS)
    with _lock:
        if (millis, rand) <= _last:  # the same millisecond (or the clock stepped back): just after the last one
            millis, rand = _last[0], _last[1] + 1 + secrets.randbits(32)
            if rand >> _RAND_BITS:  # the random bits ran out in this millisecond: borrow the next one
                millis, rand = millis + 1, secrets.randbits(_RAND_BITS - 1)
        _last = (millis, rand)
    value = millis << 80
    value |= 0x7 << 76  # version 7
    value |= ((rand >> 62) & 0xFFF) << 64  # rand_a (12 bits)
    value |= 0b10 << 62  # RFC 4122 variant
    value |= rand & ((1 << 62) - 1)  # rand_b
    digits = f"{value:032x}"  # what str(uuid.UUID(int=value)) spells, without building the UUID object
    return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"


_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def is_id(value: str) -> bool:
    """Whether ``value`` has the shape of an id we issue: anything else cannot name a row (so it is not found)."""
    return _ID.fullmatch(value) is not None
