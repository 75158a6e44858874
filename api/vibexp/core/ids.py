"""Time-ordered identifiers: sortable by creation, so cursors can page on the primary key alone."""

from __future__ import annotations

import re
import secrets
import time
import uuid

__all__ = ["is_id", "new_id"]


def new_id() -> str:
    """A UUIDv7-layout identifier (48-bit millisecond timestamp, then random bits), as a canonical string."""
    millis = time.time_ns() // 1_000_000
    rand = secrets.randbits(74)
    value = (millis & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76  # version 7
    value |= ((rand >> 62) & 0xFFF) << 64  # rand_a (12 bits)
    value |= 0b10 << 62  # RFC 4122 variant
    value |= rand & ((1 << 62) - 1)  # rand_b
    return str(uuid.UUID(int=value))


_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def is_id(value: str) -> bool:
    """Whether ``value`` has the shape of an id we issue: anything else cannot name a row (so it is not found)."""
    return _ID.fullmatch(value) is not None
