"""Background loops that retry while the database is down log the outage once, a reminder a minute, and recovery."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from vibexp.core.db import create_engine, create_session_factory
from vibexp.core.failure_log import FailureLog
from vibexp.core.keys.verifier import KeyVerifier
from vibexp.core.migrate import upgrade_async

LOGGER = "vibexp.test.failures"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _fail(failures: FailureLog, message: str = "connection refused") -> None:
    try:
        raise OSError(message)
    except OSError:
        failures.failed("3 events kept")


def test_first_failure_has_the_traceback_then_one_line_a_minute_then_recovery(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    clock = FakeClock()
    failures = FailureLog(logging.getLogger(LOGGER), "usage flush", every=60, clock=clock)
    for _ in range(960):  # four minutes of quarter-second retries
        _fail(failures)
        clock.now += 0.25
    failures.succeeded()
    records = caplog.records
    assert [r.levelname for r in records] == ["WARNING"] * 4 + ["INFO"]
    assert records[0].getMessage() == "usage flush failed; 3 events kept" and records[0].exc_info is not None
    assert all(r.exc_info is None for r in records[1:])
    assert records[1].getMessage() == (
        "usage flush still failing after 241 attempts (OSError: connection refused); 3 events kept"
    )
    assert records[-1].getMessage() == "usage flush recovered after 960 failed attempts"
    assert failures.failures == 0


def test_a_new_outage_after_recovery_is_logged_in_full_again(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    clock = FakeClock()
    failures = FailureLog(logging.getLogger(LOGGER), "key change poll", every=60, clock=clock)
    failures.succeeded()  # nothing to report
    _fail(failures)
    failures.succeeded()
    clock.now += 61
    _fail(failures, "second outage")
    messages = [(r.getMessage(), r.exc_info is not None) for r in caplog.records]
    assert messages == [
        ("key change poll failed; 3 events kept", True),
        ("key change poll recovered after 1 failed attempts", False),
        ("key change poll failed; 3 events kept", True),
    ]


def test_a_flapping_database_is_one_line_not_a_second_traceback(caplog: pytest.LogCaptureFixture) -> None:
    """A shutdown in progress lets one attempt through between failures: the relapse within ``every`` seconds of
    the recovery is a single line (this is what the operator's outage test saw as a second full report)."""
    caplog.set_level(logging.INFO, logger=LOGGER)
    clock = FakeClock()
    failures = FailureLog(logging.getLogger(LOGGER), "reconciling", every=60, clock=clock)
    _fail(failures)
    failures.succeeded()
    clock.now += 0.3
    _fail(failures, "the database system is shutting down")
    _fail(failures)  # and then it stays down: no more lines until a minute has passed
    messages = [(r.getMessage(), r.exc_info is not None) for r in caplog.records]
    assert messages == [
        ("reconciling failed; 3 events kept", True),
        ("reconciling recovered after 1 failed attempts", False),
        (
            "reconciling failing again 0.3 s after it recovered (OSError: the database system is shutting down);"
            " 3 events kept",
            False,
        ),
    ]


async def test_key_poll_outage_is_one_traceback_and_recovery_one_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A real database without its tables: every poll fails until the migration runs, then polling recovers."""
    caplog.set_level(logging.INFO, logger="vibexp.core.keys.verifier")
    url = f"sqlite+aiosqlite:///{tmp_path}/later.db"
    engine = create_engine(url)
    verifier = KeyVerifier(create_session_factory(engine), poll_interval=0.01)
    await verifier.start()
    try:
        await asyncio.sleep(0.5)  # dozens of failed polls
        await upgrade_async(url)
        for _ in range(200):
            if any("recovered" in r.getMessage() for r in caplog.records):
                break
            await asyncio.sleep(0.01)
    finally:
        await verifier.stop()
        await engine.dispose()
    records = [r for r in caplog.records if r.name == "vibexp.core.keys.verifier"]
    assert len(records) == 2, [r.getMessage() for r in records]
    failed, recovered = records
    assert failed.getMessage().startswith("key change poll failed;") and failed.exc_info is not None
    assert recovered.getMessage().startswith("key change poll recovered after ")
    assert int(recovered.getMessage().split()[-3]) >= 10
