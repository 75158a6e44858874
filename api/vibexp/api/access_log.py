"""Keep secrets out of the access log: uvicorn prints each request's full path, query string included.

A key sent as ``?api_key=vib_...`` (or any token in a query string) would otherwise be written to the log of every
process, and from there to every log collector. ``RedactQueryString`` is a ``logging.Filter`` for the
``uvicorn.access`` logger: it replaces any query string by ``?[redacted]`` and masks anything shaped like a VibeXP
key left in the path down to its display prefix.
"""

from __future__ import annotations

import logging

from vibexp.core.redaction import mask_keys

__all__ = ["RedactQueryString", "redact_target"]


def redact_target(target: str) -> str:
    path, sep, _query = target.partition("?")
    path = mask_keys(path)
    return f"{path}?[redacted]" if sep else path


class RedactQueryString(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        # uvicorn.access logs ("%s - \"%s %s HTTP/%s\" %d", client, method, full_path, version, status).
        args = record.args
        # Most lines have nothing to redact: no query string and nothing key-shaped (every key and token starts
        # with ``vib``); those keep their arguments as they are.
        if (
            isinstance(args, tuple)
            and len(args) >= 3
            and isinstance(target := args[2], str)
            and ("?" in target or "vib" in target)
        ):
            record.args = (*args[:2], redact_target(target), *args[3:])
        return True
