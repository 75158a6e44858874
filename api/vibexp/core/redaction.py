"""Keys out of logs and records: anything shaped like a VibeXP key, whole or cut short, down to its display prefix.

A key is ``vib_`` + 64 hex characters, of which ``vib_`` + the first 8 (the display prefix) are shown everywhere
(dashboard, audit trail, ``vibexp scan``). ``mask_keys`` replaces ``vib_`` + 8 hex + any further hex by the
display prefix and ``…``: a whole key, and any truncated remainder of one (60 hex characters plus the checksum
would be enough to rebuild a key), so it must run BEFORE a value is cut to its column's length. The access log
(``vibexp.api.access_log``) and the audit trail (``vibexp.core.audit.service``) both use it.
"""

from __future__ import annotations

import re

__all__ = ["mask_keys"]

#: ``vib_``, the display prefix's 8 hex characters, and at least one more (a display prefix alone is left as is).
#: OAuth's access and refresh tokens and authorization codes (``vibo_``, ``vibr_``, ``vibc_``) likewise.
_KEY = re.compile(r"(vib[ocr]?_)([0-9a-fA-F]{8})[0-9a-fA-F]+")


def mask_keys(text: str) -> str:
    return _KEY.sub(r"\1\2…", text)
