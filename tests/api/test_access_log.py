"""The access log's filter (``vibexp.api.access_log.RedactQueryString``) on uvicorn.access's own record shape."""

from __future__ import annotations

import logging

import pytest

from vibexp.api.access_log import RedactQueryString

KEY = "vib_" + "0123abcd" * 8
TOKEN = "vibo_" + "fe" * 32


def _line(target: str) -> str:
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("10.0.0.1:5", "GET", target, "1.1", 200),
        None,
    )
    assert RedactQueryString().filter(record) is True
    return record.getMessage()


@pytest.mark.parametrize(
    ("target", "logged"),
    [
        ("/bench/constant", "/bench/constant"),
        ("/api/v1/prompts/p1", "/api/v1/prompts/p1"),
        (f"/api/v1/prompts?api_key={KEY}", "/api/v1/prompts?[redacted]"),
        ("/api/v1/prompts?", "/api/v1/prompts?[redacted]"),
        (f"/api/v1/keys/{KEY}", "/api/v1/keys/vib_0123abcd…"),
        (f"/x/{TOKEN}/y?t=1", "/x/vibo_fefefefe…/y?[redacted]"),
        ("/api/v1/keys/vib_0123abcd", "/api/v1/keys/vib_0123abcd"),  # a display prefix alone stays
    ],
)
def test_query_strings_and_keys_never_reach_the_access_log(target: str, logged: str) -> None:
    line = _line(target)
    assert line == f'10.0.0.1:5 - "GET {logged} HTTP/1.1" 200'
    assert KEY not in line and TOKEN not in line
