"""Cursor pagination on time-ordered primary keys: stable under inserts, no OFFSET scans.

Ranked search pages (``q=``) are ordered by (score descending, id): their cursor carries both
(``encode_ranked_cursor``).
"""

from __future__ import annotations

import base64
import binascii
import math
from dataclasses import dataclass
from typing import Annotated, Generic, TypeVar

from pydantic import Field

from vibexp.core.errors import InvalidInput

__all__ = [
    "DEFAULT_PAGE_SIZE",
    "MAX_CURSOR_CHARS",
    "MAX_PAGE_SIZE",
    "Page",
    "PageCursor",
    "PageSize",
    "decode_cursor",
    "decode_ranked_cursor",
    "encode_cursor",
    "encode_ranked_cursor",
]

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
#: The longest cursor accepted (an encoded id, and a score for ranked pages, are far shorter).
MAX_CURSOR_CHARS = 200

#: A page size and a cursor as every list takes them (``ListQuery``, the MCP list tools' arguments): the bounds are
#: declared here once; an adapter adds only its description (``Annotated[PageSize, Field(description=...)]``).
PageSize = Annotated[int, Field(ge=1, le=MAX_PAGE_SIZE)]
PageCursor = Annotated[str, Field(max_length=MAX_CURSOR_CHARS)]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


def encode_cursor(last_id: str) -> str:
    return base64.urlsafe_b64encode(last_id.encode()).decode().rstrip("=")


_INVALID = "invalid cursor: pass the next_cursor value of the previous page"
_RANKED = "r:"


def encode_ranked_cursor(score: float, last_id: str) -> str:
    # repr() of a float reads back as the identical float, so the next page starts exactly after this row.
    return encode_cursor(f"{_RANKED}{score!r}:{last_id}")


def decode_ranked_cursor(cursor: str) -> tuple[float, str]:
    """(score, id) of the last row of the previous ranked page; a plain list's cursor is refused like garbage."""
    value = decode_cursor(cursor)
    if not value.startswith(_RANKED):
        raise InvalidInput(_INVALID)
    score_text, _, last_id = value[len(_RANKED) :].partition(":")
    try:
        score = float(score_text)
    except ValueError:
        raise InvalidInput(_INVALID) from None
    if not last_id or not math.isfinite(score):
        raise InvalidInput(_INVALID)
    return score, last_id


def decode_cursor(cursor: str) -> str:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = base64.urlsafe_b64decode(padded.encode("ascii")).decode("ascii")
    except (binascii.Error, UnicodeError, ValueError):
        raise InvalidInput(_INVALID) from None
    if not value or len(value) > 80 or not value.isprintable():
        raise InvalidInput(_INVALID)
    return value
