"""The outage log ends an outage only when a database operation succeeds, not when any request does."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from sqlalchemy import text

from vibexp.core.db import create_engine
from vibexp.core.outage import OutageLog

LOGGER = "vibexp.test.outage"


def _messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER]


async def test_only_a_statement_that_completes_ends_the_outage(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    now = [1000.0]
    outage = OutageLog(logging.getLogger(LOGGER), clock=lambda: now[0])
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'outage.db'}")
    outage.watch(engine)
    try:
        with caplog.at_level(logging.INFO, logger=LOGGER):
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))  # no outage: nothing to say
            assert _messages(caplog) == []
            for _ in range(3):
                outage.request_failed("OSError: connection refused")
            now[0] += 61
            outage.request_failed("OSError: connection refused")
            assert outage.failed_requests == 4
            async with engine.connect() as conn:
                with pytest.raises(Exception, match="no such table"):
                    await conn.execute(text("SELECT * FROM missing"))  # a failed statement ends nothing
            assert outage.failed_requests == 4
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
                await conn.execute(text("SELECT 2"))
    finally:
        await engine.dispose()
    assert _messages(caplog) == [
        "database unreachable, answering 503 until it returns (OSError: connection refused)",
        "database still unreachable; 4 requests answered 503 so far",
        "database reachable again; 4 requests were answered 503 meanwhile",
    ]
    assert outage.failed_requests == 0
