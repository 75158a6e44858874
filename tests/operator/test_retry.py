"""One retry schedule per object: doubling from the base delay up to the cap, reset by a success (no cluster)."""

from __future__ import annotations

import logging

from vibexp.operator.handlers import HANDLERS, OUTAGE_MARK, _QuietRetries
from vibexp.operator.retry import Backoff


def test_backoff_doubles_up_to_the_cap_per_object() -> None:
    now = [100.0]
    backoff = Backoff(base=1, cap=8, clock=lambda: now[0])
    assert backoff.remaining("a") == 0
    assert [backoff.failed("a") for _ in range(6)] == [1, 2, 4, 8, 8, 8]
    assert backoff.remaining("a") == 8 and backoff.remaining("b") == 0  # per object
    now[0] += 5
    assert backoff.remaining("a") == 3
    now[0] += 3
    assert backoff.remaining("a") == 0 and backoff.failures("a") == 6
    backoff.succeeded("a")
    assert backoff.failures("a") == 0 and backoff.failed("a") == 1


def test_kopf_retry_lines_are_left_to_our_failure_log() -> None:
    quiet = _QuietRetries()
    ours = logging.LogRecord(
        "kopf.objects", logging.ERROR, "", 0, "Handler 'x' failed temporarily: %s", (f"{OUTAGE_MARK} db",), None
    )
    other = logging.LogRecord("kopf.objects", logging.ERROR, "", 0, "Handler 'x' failed permanently: boom", (), None)
    assert not quiet.filter(ours) and quiet.filter(other)


def test_handlers_are_one_table() -> None:
    causes = {(h.metric_resource, h.metric_handler): h.on for h in HANDLERS}
    assert causes == {
        ("apikey", "reconcile"): ("resume", "create", "update"),
        ("apikey", "delete"): ("delete",),
        ("apikey", "sync"): (),
        ("vibexptenant", "resume"): ("resume",),
        ("vibexptenant", "reconcile"): ("create", "update"),
        ("vibexptenant", "delete"): ("delete",),
        ("vibexptenant", "sync"): (),
    }
