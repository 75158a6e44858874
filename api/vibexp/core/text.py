"""Text every supported database can store, checked at the schema boundary so bad input is a 422, never a 500.

PostgreSQL ``text``/``varchar`` cannot hold NUL (U+0000), and neither backend can store a lone UTF-16 surrogate
(``"\\ud800"`` is valid JSON that Python's ``json`` module accepts). Both would otherwise fail deep in the driver.
SQLite could store NUL, but the two backends must behave the same, so it is refused everywhere.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field

__all__ = ["NUL_FREE_PATTERN", "StorableText", "check_storable", "make_storable"]

#: What ``make_storable`` replaces: control characters (NUL among them) and surrogate code points (a Python ``str``
#: holds a surrogate only when it is a lone one: characters outside the BMP are single code points).
_UNSTORABLE = re.compile("[\x00-\x1f\x7f\ud800-\udfff]")

#: Documented in the OpenAPI schema of every stored text field.
NUL_FREE_PATTERN = r"^[^\x00]*$"


def check_storable(value: str) -> str:
    """Return ``value`` if a database can store it; raise ``ValueError`` naming the problem otherwise."""
    if "\x00" in value:
        raise ValueError("must not contain the NUL character (U+0000)")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode (it contains a lone surrogate code point)") from None
    return value


#: A string that both SQLite and PostgreSQL can store; combine with ``Field``/``StringConstraints`` for lengths.
StorableText = Annotated[str, AfterValidator(check_storable), Field(json_schema_extra={"pattern": NUL_FREE_PATTERN})]


def make_storable(value: str, max_length: int) -> str:
    """``value`` as text every database can store in a column of ``max_length`` characters: control characters
    and lone surrogates become U+FFFD, and it is cut to ``max_length``.

    For text a client chose that is recorded rather than refused (usage events: MCP method and tool names, routes):
    a request is answered whatever its names hold, and what is written about it must never fail the write.
    """
    return _UNSTORABLE.sub("\ufffd", value[:max_length])  # one character for one: the length holds
