"""One source of "now" so windows, expiry and usage agree (and tests can reason about them)."""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["utcnow"]


def utcnow() -> datetime:
    return datetime.now(UTC)
