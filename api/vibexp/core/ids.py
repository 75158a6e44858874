"""Time-ordered identifiers: sortable by creation, so cursors can page on the primary key alone."""

from __future__ import annotations

import secrets
import time
import uuid

__all__ = ["new_id"]


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
